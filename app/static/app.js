// Benzer Desen: the page's logic (no framework, no build step).
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'title' || k === 'type') e.setAttribute(k, v);
    else e[k] = v;
  }
  if (text !== undefined) e.textContent = text;
  return e;
};

const state = {
  meta: null,
  // who is logged in (GET /api/me): name and the session's CSRF token
  user: null,
  csrf: null,
  queryId: null,
  filters: { design: new Set(), season: new Set(), quality: new Set(), tags: new Set(), cluster: new Set() },
  tagsMode: 'any',
  feedback: { liked: 0, disliked: 0 },
  searchSeq: 0,
  searchAbort: null,
  // left panel paging
  browse: { offset: 0, after: null, hasMore: true, loading: false, seq: 0, total: null },
};

async function api(path, options) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = body && body.error ? body.error : `HTTP ${res.status}`;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

function showError(msg) {
  const e = $('#error');
  if (!msg) { e.hidden = true; e.textContent = ''; return; }
  e.hidden = false;
  e.textContent = msg;
}

// ---------------------------------------------------------------- language

// The page in English and Turkish (the seed's users write Turkish). The
// language comes from the browser (tr* -> Turkish), can be switched in the
// top bar and is remembered. Texts the server writes (error messages, the
// plan) stay English.
const MESSAGES = {
  en: {
    language: 'Language', model: 'Model', version: 'Version', metric: 'Metric', lightBackground: 'light background',
    subtitle: 'similar-pattern search · PostgreSQL + benzer faiss indexes',
    skip: 'Skip to results', search: 'Search', refineNA: 'Refine (not available)',
    refine: 'Refine with feedback ({liked} liked, {disliked} disliked)',
    refineTitle: 'Search again with the query moved towards the results you liked and away from the ones you disliked (Rocchio)',
    exportCsv: 'Export CSV', exportTitle: 'Download these results (file names, scores, metadata) as CSV',
    clearFilters: 'clear filters', hint: 'Click an image on the left to see the most similar patterns.',
    searchBox: 'File name (test/0001) or #id', searchBoxLabel: 'Search the images by file name, or jump to an image id (#1234)',
    allDesigns: 'all designs', allSeasons: 'all seasons', allQualities: 'all qualities', allTags: 'all tags',
    byDesign: 'Show images of one design', bySeason: 'Show images of one season',
    byQuality: 'Show images of one quality', byTag: 'Show images with one tag',
    imagesPanel: 'Images', resultsPanel: 'Similar images',
    design: 'Design', season: 'Season', quality: 'Quality', tags: 'Tags', cluster: 'Cluster',
    match: 'match: {mode}', any: 'any', all: 'all', matchTitle: 'match any of the selected tags, or all of them',
    noClusters: '– (none for this model)', noClustersTable: '– (no clusters table)',
    exactScan: ' (no index: exact scan)', faissIndex: ' (faiss index)',
    searching: 'searching…', refining: 'refining…', results: '{n} results', in: ' in ',
    roundTrip: ' query ({ms} ms round trip) · {model}/{version} · {metric}',
    refined: ' · refined with {liked} liked, {disliked} disliked',
    qualityOf: 'quality {q}', clusterOf: 'cluster {c}',
    noMatch: 'No image matches these filters.', searchFrom: 'search from this image', searchFromName: 'search from {name}',
    similarityTitle: 'similarity: 100 % is the query image, 0 % as far apart as two typical images of this model (median {metric} distance {typical})',
    scoreTitle: 'score {score} ({kind}), distance {distance}',
    cosineKind: 'cosine similarity', l2Kind: '1 / (1 + L2 distance)',
    feedbackFailed: 'Feedback not saved: {msg}', metaFailed: 'Cannot load /api/meta: {msg}',
    noVectors: 'The features table holds no vectors.',
    imagesCount: '{total} images · showing {shown}', imagesMatch: '{total} images match · showing {shown}',
    good: 'Good match', bad: 'Bad match', goodTitle: 'good match', badTitle: 'bad match',
    preview: 'Larger preview', previewTitle: 'larger preview', close: 'Close', compareWith: 'Compare with',
    upload: 'Search with your picture', uploaded: 'your picture', uploadFailed: 'The picture was not searched: {msg}',
    logIn: 'Log in', logOut: 'Log out', logInTitle: 'Log in to vote', userName: 'User name', password: 'Password',
    cancel: 'Cancel', loginFailed: 'Not logged in: {msg}', loggedInAs: 'Logged in as {name}',
    refineLogin: 'Refine (log in to vote)',
  },
  tr: {
    language: 'Dil', model: 'Model', version: 'Sürüm', metric: 'Ölçüt', lightBackground: 'açık zemin',
    subtitle: 'benzer desen arama · PostgreSQL + benzer faiss dizinleri',
    skip: 'Sonuçlara geç', search: 'Ara', refineNA: 'İyileştir (kullanılamıyor)',
    refine: 'Geri bildirimle iyileştir ({liked} beğenilen, {disliked} beğenilmeyen)',
    refineTitle: 'Sorguyu beğendiğiniz sonuçlara yaklaştırıp beğenmediklerinizden uzaklaştırarak yeniden ara (Rocchio)',
    exportCsv: 'CSV indir', exportTitle: 'Bu sonuçları (dosya adları, puanlar, bilgiler) CSV olarak indir',
    clearFilters: 'süzgeçleri temizle', hint: 'En benzer desenleri görmek için soldan bir görsele tıklayın.',
    searchBox: 'Dosya adı (test/0001) ya da #no', searchBoxLabel: 'Görselleri dosya adına göre ara ya da bir görsel numarasına git (#1234)',
    allDesigns: 'tüm desenler', allSeasons: 'tüm sezonlar', allQualities: 'tüm kaliteler', allTags: 'tüm etiketler',
    byDesign: 'Tek bir desenin görsellerini göster', bySeason: 'Tek bir sezonun görsellerini göster',
    byQuality: 'Tek bir kalitenin görsellerini göster', byTag: 'Bir etiketi olan görselleri göster',
    imagesPanel: 'Görseller', resultsPanel: 'Benzer görseller',
    design: 'Desen', season: 'Sezon', quality: 'Kalite', tags: 'Etiketler', cluster: 'Küme',
    match: 'eşleşme: {mode}', any: 'herhangi biri', all: 'hepsi', matchTitle: 'seçili etiketlerden herhangi biri ya da hepsi',
    noClusters: '– (bu model için yok)', noClustersTable: '– (kümeler tablosu yok)',
    exactScan: ' (dizin yok: tam tarama)', faissIndex: ' (faiss dizini)',
    searching: 'aranıyor…', refining: 'iyileştiriliyor…', results: '{n} sonuç', in: ', ',
    roundTrip: ' sorgu ({ms} ms gidiş-dönüş) · {model}/{version} · {metric}',
    refined: ' · {liked} beğenilen, {disliked} beğenilmeyenle iyileştirildi',
    qualityOf: 'kalite {q}', clusterOf: 'küme {c}',
    noMatch: 'Bu süzgeçlere uyan görsel yok.', searchFrom: 'bu görselden ara', searchFromName: '{name} görselinden ara',
    similarityTitle: 'benzerlik: %100 sorgu görselinin kendisi, %0 bu modelin iki sıradan görseli kadar uzak (ortanca {metric} uzaklığı {typical})',
    scoreTitle: 'puan {score} ({kind}), uzaklık {distance}',
    cosineKind: 'kosinüs benzerliği', l2Kind: '1 / (1 + L2 uzaklığı)',
    feedbackFailed: 'Geri bildirim kaydedilemedi: {msg}', metaFailed: '/api/meta yüklenemedi: {msg}',
    noVectors: 'features tablosunda vektör yok.',
    imagesCount: '{total} görsel · {shown} gösteriliyor', imagesMatch: '{total} görsel uyuyor · {shown} gösteriliyor',
    good: 'İyi eşleşme', bad: 'Kötü eşleşme', goodTitle: 'iyi eşleşme', badTitle: 'kötü eşleşme',
    preview: 'Büyük önizleme', previewTitle: 'büyük önizleme', close: 'Kapat', compareWith: 'Karşılaştır',
    upload: 'Kendi görselinizle arayın', uploaded: 'sizin görseliniz', uploadFailed: 'Görsel aranamadı: {msg}',
    logIn: 'Giriş yap', logOut: 'Çıkış yap', logInTitle: 'Oy vermek için giriş yapın', userName: 'Kullanıcı adı', password: 'Parola',
    cancel: 'Vazgeç', loginFailed: 'Giriş yapılamadı: {msg}', loggedInAs: '{name} olarak giriş yapıldı',
    refineLogin: 'İyileştir (oy için giriş yapın)',
  },
};

let lang = (() => {
  const saved = localStorage.getItem('benzer-lang');
  if (saved === 'en' || saved === 'tr') return saved;
  return (navigator.language || 'en').toLowerCase().startsWith('tr') ? 'tr' : 'en';
})();

// The text for key in the page's language, with {name} filled from vars.
function t(key, vars = {}) {
  const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

function number(n) { return n.toLocaleString(lang === 'tr' ? 'tr-TR' : 'en'); }

// The texts written in index.html: data-i18n (text), data-i18n-placeholder,
// data-i18n-aria-label, data-i18n-title.
function translateStatic(root = document) {
  document.documentElement.lang = lang;
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const [attr, data] of [['placeholder', 'i18nPlaceholder'], ['aria-label', 'i18nAriaLabel'], ['title', 'i18nTitle']]) {
    for (const e of root.querySelectorAll(`[data-${attr === 'aria-label' ? 'i18n-aria-label' : 'i18n-' + attr}]`)) {
      e.setAttribute(attr, t(e.dataset[data]));
    }
  }
}

// ---------------------------------------------------------------- controls

function currentModel() { return $('#model').value; }
function currentVersion() { return $('#version').value; }
function versionInfo() {
  const m = state.meta.models.find((x) => x.model === currentModel());
  return m ? m.versions.find((v) => v.version === currentVersion()) : null;
}

function fillVersions(keepMetric) {
  const m = state.meta.models.find((x) => x.model === currentModel());
  const sel = $('#version');
  sel.innerHTML = '';
  for (const v of m.versions) sel.append(el('option', { value: v.version }, v.version));
  sel.value = m.versions[m.versions.length - 1].version;
  onVersionChange(keepMetric);
}

function onVersionChange(keepMetric) {
  const vi = versionInfo();
  const metricSel = $('#metric');
  for (const opt of metricSel.options) {
    const info = vi.metrics[opt.value];
    opt.textContent = opt.value + (info.exact_scan ? t('exactScan') : t('faissIndex'));
  }
  if (!keepMetric) metricSel.value = vi.default_metric;
  buildClusterChips();
}

function chip(group, value, label) {
  const b = el('button', { type: 'button', class: 'chip', 'data-filter': group, 'data-value': String(value), 'aria-pressed': 'false' }, label);
  if (state.filters[group].has(String(value))) b.setAttribute('aria-pressed', 'true');
  b.addEventListener('click', () => {
    const set = state.filters[group];
    const v = String(value);
    if (set.has(v)) set.delete(v); else set.add(v);
    b.setAttribute('aria-pressed', set.has(v) ? 'true' : 'false');
    if (state.queryId) runSearch(false);
  });
  return b;
}

function buildFilters() {
  const box = $('#filters');
  box.innerHTML = '';
  const groups = [
    ['design', t('design'), state.meta.designs],
    ['season', t('season'), state.meta.seasons],
    ['quality', t('quality'), state.meta.qualities],
    ['tags', t('tags'), state.meta.tags],
  ];
  for (const [key, label, values] of groups) {
    const g = el('div', { class: 'fgroup', 'data-group': key });
    g.append(el('span', { class: 'flabel' }, label));
    for (const v of values) g.append(chip(key, v, v));
    if (key === 'tags') {
      const mode = el('button', { type: 'button', class: 'chip mode', 'data-testid': 'tags-mode', title: t('matchTitle') }, t('match', { mode: t(state.tagsMode) }));
      mode.addEventListener('click', () => {
        state.tagsMode = state.tagsMode === 'any' ? 'all' : 'any';
        mode.textContent = t('match', { mode: t(state.tagsMode) });
        if (state.queryId && state.filters.tags.size) runSearch(false);
      });
      g.append(mode);
    }
    box.append(g);
  }
  const cg = el('div', { class: 'fgroup', id: 'cluster-group', 'data-group': 'cluster' });
  box.append(cg);
  buildClusterChips();
}

function buildClusterChips() {
  const cg = $('#cluster-group');
  if (!cg) return;
  cg.innerHTML = '';
  cg.append(el('span', { class: 'flabel' }, t('cluster')));
  const vi = versionInfo();
  // Cluster numbers belong to a model version: drop the selection when it changes.
  const k = vi && vi.clusters ? vi.clusters : 0;
  for (const v of [...state.filters.cluster]) if (Number(v) >= k) state.filters.cluster.delete(v);
  if (!k) {
    cg.append(el('span', { class: 'flabel' }, state.meta.features.clusters ? t('noClusters') : t('noClustersTable')));
    return;
  }
  for (let i = 0; i < k; i++) cg.append(chip('cluster', i, String(i)));
}

function searchParams(refine) {
  const p = new URLSearchParams();
  p.set('id', state.queryId);
  p.set('model', currentModel());
  p.set('version', currentVersion());
  p.set('metric', $('#metric').value);
  let n = parseInt($('#n').value, 10);
  if (!Number.isFinite(n)) n = 100;
  n = Math.min(500, Math.max(1, n));
  $('#n').value = n;
  p.set('n', n);
  for (const key of ['design', 'season', 'quality', 'tags', 'cluster']) {
    if (state.filters[key].size) p.set(key, [...state.filters[key]].join(','));
  }
  if (state.filters.tags.size) p.set('tags_mode', state.tagsMode);
  if (refine) p.set('refine', '1');
  return p;
}

// ---------------------------------------------------------------- search

function setLoading(on) {
  $('#spinner').hidden = !on;
  $('#status').dataset.state = on ? 'loading' : 'done';
  $('#results').classList.toggle('loading', on);
}

function renderQuery(q) {
  const card = $('#query-card');
  card.innerHTML = '';
  const img = el('img', { src: q.url, alt: q.filename, width: 64, height: 64 });
  const info = el('div');
  info.append(el('div', { class: 'qtitle', 'data-testid': 'query-filename' }, q.filename));
  info.append(el('div', { class: 'qmeta' }, `${q.design} · ${q.season} · ${t('qualityOf', { q: q.quality })} · ${t('clusterOf', { c: q.cluster ?? '-' })}`));
  info.append(el('div', { class: 'qmeta' }, q.tags.join(', ')));
  card.append(img, info);
}

function updateRefineButton() {
  const f = state.feedback;
  const btn = $('#refine-btn');
  const available = state.meta.features.refine;
  btn.disabled = !available || !state.user || !state.queryId || (f.liked + f.disliked === 0);
  btn.textContent = !available ? t('refineNA') : state.user ? t('refine', f) : t('refineLogin');
}

// Shows who is logged in, or the login button.
function renderAccount() {
  const users = state.meta?.features?.feedback !== false;
  $('#account-name').textContent = state.user ? t('loggedInAs', { name: state.user }) : '';
  $('#login-btn').hidden = !users || !!state.user;
  $('#logout-btn').hidden = !state.user;
  if (state.meta) updateRefineButton();
}

// Asks the server who is logged in (and the session's CSRF token).
async function loadAccount() {
  try {
    const me = await api('/api/me');
    state.user = me.user;
    state.csrf = me.csrf || null;
  } catch (e) {
    state.user = null;
    state.csrf = null;
  }
  renderAccount();
}

// The login dialog; resolves when it closes (logged in or not).
function openLogin() {
  $('#login-error').textContent = '';
  $('#login').showModal();
  $('#login-name').focus();
}

async function submitLogin(e) {
  e.preventDefault();
  try {
    const res = await api('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: $('#login-name').value, password: $('#login-password').value }),
    });
    state.user = res.user;
    state.csrf = res.csrf;
    $('#login-password').value = '';
    $('#login').close();
    if (!state.meta) { location.reload(); return; }  // --require-login: the page loads now
    renderAccount();
    // The votes shown are the user's own: search again to show them.
    if (state.queryId) runSearch(false);
  } catch (err) {
    $('#login-error').textContent = t('loginFailed', { msg: err.message });
  }
}

async function logout() {
  try {
    await api('/api/logout', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': state.csrf || '' }, body: '{}' });
  } catch (e) { /* the session is gone either way */ }
  state.user = null;
  state.csrf = null;
  renderAccount();
  if (state.queryId) runSearch(false);
}

// Renders an answer into box (#results, or #results-compare for the model
// compared with: its cards have no votes, which belong to the chosen model).
function renderResults(data, box = $('#results')) {
  const compared = box.id === 'results-compare';
  box.innerHTML = '';
  if (compared) box.append(el('div', { class: 'results-head', 'data-testid': 'compare-head' }, `${data.model}/${data.version} · ${data.metric}`));
  const tpl = $('#result-tpl');
  for (const r of data.results) {
    const node = tpl.content.firstElementChild.cloneNode(true);
    translateStatic(node);
    node.dataset.id = r.id;
    node.dataset.design = r.design;
    node.dataset.season = r.season;
    node.dataset.quality = r.quality;
    node.dataset.tags = r.tags.join(',');
    node.dataset.cluster = r.cluster ?? '';
    const img = node.querySelector('img');
    img.src = r.thumb || r.url;  // inline in the answer: no request per result
    img.alt = r.filename;
    img.title = t('searchFrom');
    img.addEventListener('click', () => selectQuery(r.id));
    // Reachable and usable from the keyboard, like the panel's thumbnails.
    img.tabIndex = 0;
    img.setAttribute('role', 'button');
    img.setAttribute('aria-label', t('searchFromName', { name: r.filename }));
    img.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectQuery(r.id); }
    });
    node.querySelector('.rank').textContent = '#' + r.rank;
    // The percentage people read; the raw score and distance on hover.
    node.querySelector('.score').textContent = formatSimilarity(r.similarity);
    node.querySelector('.score').title =
      t('similarityTitle', { metric: data.metric, typical: data.typical_distance ?? 'n/a' }) + '\n' +
      t('scoreTitle', { score: formatScore(r.score), kind: data.metric === 'cosine' ? t('cosineKind') : t('l2Kind'), distance: r.distance });
    node.querySelector('.fname').textContent = `${r.filename} · d ${r.distance === null ? '-' : Number(r.distance.toPrecision(4))}`;
    node.querySelector('.design').textContent = r.design;
    node.querySelector('.season').textContent = r.season;
    node.querySelector('.quality').textContent = t('qualityOf', { q: r.quality });
    node.querySelector('.cluster').textContent = t('clusterOf', { c: r.cluster ?? '-' });
    const tags = node.querySelector('.tags');
    for (const t of r.tags) tags.append(el('span', { class: 'tag' }, t));
    setVoteUI(node, r.vote);
    node.querySelector('.preview').addEventListener('click', () => showPreview(r));
    node.querySelector('.vote.up').addEventListener('click', () => vote(node, r.id, 1));
    node.querySelector('.vote.down').addEventListener('click', () => vote(node, r.id, -1));
    if (!state.meta.features.feedback) node.querySelectorAll('.vote.up, .vote.down').forEach((b) => { b.disabled = true; });
    // Votes belong to a stored query image of the chosen model.
    if (compared || data.query.upload) node.querySelectorAll('.vote.up, .vote.down').forEach((b) => b.remove());
    box.append(node);
  }
  if (!data.results.length) box.append(el('div', { class: 'hint' }, t('noMatch')));
  // A new answer starts at its best match, not where the last one was left.
  box.scrollTop = 0;
}

// Cosine scores are near 1; 1 / (1 + L2 distance) on raw pixel vectors is
// tiny (distances are in the thousands): show 4 significant digits.
function formatScore(x) {
  if (x === null || x === undefined) return 'n/a';
  return Math.abs(x) >= 0.1 ? x.toFixed(4) : x.toPrecision(4);
}

function formatSimilarity(p) {
  if (p === null || p === undefined) return 'n/a';
  return `${p.toFixed(1)} %`;
}

function setVoteUI(node, v) {
  node.dataset.vote = v;
  node.querySelector('.vote.up').setAttribute('aria-pressed', v > 0 ? 'true' : 'false');
  node.querySelector('.vote.down').setAttribute('aria-pressed', v < 0 ? 'true' : 'false');
  node.classList.toggle('liked', v > 0);
  node.classList.toggle('disliked', v < 0);
}

async function vote(node, resultId, v) {
  if (!state.user) { openLogin(); return; }
  const current = Number(node.dataset.vote || 0);
  const next = current === v ? 0 : v;  // clicking the same thumb again clears it
  try {
    const res = await api('/api/feedback', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': state.csrf || '' },
      body: JSON.stringify({ query_id: state.queryId, result_id: resultId, model: currentModel(), version: currentVersion(), vote: next }),
    });
    setVoteUI(node, res.vote);
    state.feedback = { liked: res.liked, disliked: res.disliked };
    updateRefineButton();
    showError(null);
  } catch (e) {
    if (e.status === 401) { state.user = null; renderAccount(); openLogin(); return; }
    showError(t('feedbackFailed', { msg: e.message }));
  }
}

async function runSearch(refine) {
  if (!state.queryId) return;
  const seq = ++state.searchSeq;
  if (state.searchAbort) state.searchAbort.abort();
  const abort = new AbortController();
  state.searchAbort = abort;
  const params = searchParams(refine);
  setLoading(true);
  $('#status-text').textContent = refine ? t('refining') : t('searching');
  // Each new search is a step of the browser's history (Back returns to
  // the previous one); a search restored from the history replaces it.
  const url = '#' + params.toString();
  if (state.fromHistory || location.hash === url) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  state.fromHistory = false;
  const t0 = performance.now();
  try {
    const data = await api('/api/similar?' + params.toString(), { signal: abort.signal });
    if (seq !== state.searchSeq) return;
    const total = performance.now() - t0;
    renderQuery(data.query);
    showAnswer(data, total);
    if (data.feedback) state.feedback = { liked: data.feedback.liked, disliked: data.feedback.disliked };
    updateRefineButton();
    await compareSearch(params, seq);
  } catch (e) {
    if (e.name === 'AbortError') return;
    if (seq !== state.searchSeq) return;
    $('#status-text').textContent = '';
    showError(e.message);
  } finally {
    if (seq === state.searchSeq) setLoading(false);
  }
}

// The model version compared with, as "model/version", or "".
function compareChoice() { return $('#compare').value; }

function fillCompare() {
  const sel = $('#compare');
  const keep = sel.value;
  sel.innerHTML = '';
  sel.append(el('option', { value: '' }, '—'));
  for (const m of state.meta.models) {
    for (const v of m.versions) sel.append(el('option', { value: `${m.model}/${v.version}` }, `${m.model}/${v.version}`));
  }
  sel.value = [...sel.options].some((o) => o.value === keep) ? keep : '';
}

// The same search (query image, filters, N) on the model version compared
// with, at its default metric, shown beside the results.
async function compareSearch(params, seq) {
  const box = $('#results-compare');
  const choice = compareChoice();
  document.body.classList.toggle('comparing', !!choice);
  box.hidden = !choice;
  if (!choice) { box.innerHTML = ''; return; }
  const [model, version] = choice.split('/');
  const m = state.meta.models.find((x) => x.model === model);
  const vi = m && m.versions.find((v) => v.version === version);
  const p = new URLSearchParams(params);
  p.set('model', model);
  p.set('version', version);
  p.set('metric', vi ? vi.default_metric : 'cosine');
  p.delete('refine');
  p.delete('cluster');  // cluster numbers belong to one model version
  try {
    const data = await api('/api/similar?' + p.toString());
    if (seq !== state.searchSeq) return;
    renderResults(data, box);
  } catch (e) {
    if (seq === state.searchSeq) box.replaceChildren(el('div', { class: 'hint' }, e.message));
  }
}

// The larger preview of a result (a <dialog>: Esc and the button close it,
// the focus returns where it was).
function showPreview(r) {
  $('#preview-img').src = `/img/${r.id}.png?scale=12`;
  $('#preview-img').alt = r.filename;
  $('#preview-name').textContent = `#${r.rank} · ${r.filename} · ${formatSimilarity(r.similarity)}`;
  $('#preview-meta').textContent =
    `${r.design} · ${r.season} · ${t('qualityOf', { q: r.quality })} · ${t('clusterOf', { c: r.cluster ?? '-' })} · ${r.tags.join(', ')}`;
  $('#preview').showModal();
}

// Back / Forward: the search the URL names, with its model and filters.
function restoreHistoryStep() {
  for (const f of Object.values(state.filters)) f.clear();
  state.tagsMode = 'any';
  const id = restoreFromHash();
  buildFilters();
  if (id) {
    state.fromHistory = true;
    selectQuery(id);
  }
}

// The results on screen as CSV (one row per result, a header first).
function resultsCsv(data) {
  const cell = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  const rows = [['rank', 'id', 'filename', 'similarity_percent', 'score', 'distance', 'design', 'season', 'quality', 'cluster', 'tags']];
  for (const r of data.results) {
    rows.push([r.rank, r.id, r.filename, r.similarity, r.score, r.distance, r.design, r.season, r.quality, r.cluster, r.tags.join(' ')]);
  }
  return rows.map((row) => row.map(cell).join(',')).join('\r\n') + '\r\n';
}

function exportCsv() {
  const data = state.lastResults;
  if (!data) return;
  const blob = new Blob([resultsCsv(data)], { type: 'text/csv;charset=utf-8' });
  const a = el('a', { href: URL.createObjectURL(blob), download: `similar-to-${data.query.id}-${data.model}-${data.version}-${data.metric}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// Shows an answer of /api/similar or /api/similar-image: the results, the
// export, and the status line (count, query time, round trip, index).
function showAnswer(data, total) {
  renderResults(data);
  state.lastResults = data;
  $('#export-btn').disabled = !data.results.length;
  const st = $('#status-text');
  st.innerHTML = '';
  st.append(el('b', { 'data-testid': 'result-count' }, t('results', { n: data.count })), t('in'));
  st.append(el('b', { 'data-testid': 'query-time' }, `${data.query_ms.toFixed(1)} ms`));
  st.append(t('roundTrip', { ms: total.toFixed(0), model: data.model, version: data.version, metric: data.metric }));
  if (data.refine) st.append(el('span', { 'data-testid': 'refined' }, t('refined', data.feedback)));
  if (data.exact_scan) st.append(' · ', el('span', { class: 'warn', 'data-testid': 'exact-scan' }, data.plan || data.metric));
  else st.append(' · ' + data.index);
  $('#status').dataset.refine = data.refine ? '1' : '0';
  showError(null);
}

// Search with a picture of the user's own (a file chosen or pasted): the
// server decodes it, brings it to the collection's format and computes the
// chosen model's vector from it. Not a history step (a URL cannot hold it).
async function searchUpload(file) {
  if (!file) return;
  const seq = ++state.searchSeq;
  if (state.searchAbort) state.searchAbort.abort();
  state.queryId = null;
  setLoading(true);
  $('#status-text').textContent = t('searching');
  const p = searchParams(false);
  for (const key of ['id', 'cluster', 'refine']) p.delete(key);
  try {
    const t0 = performance.now();
    const data = await api('/api/similar-image?' + p.toString(), {
      method: 'POST', headers: { 'Content-Type': file.type || 'image/png' }, body: file,
    });
    if (seq !== state.searchSeq) return;
    renderQuery({ ...data.query, filename: t('uploaded'), design: '', season: '', quality: '-', cluster: null, tags: [] });
    $('#refine-btn').disabled = true;
    showAnswer(data, performance.now() - t0);
  } catch (e) {
    if (seq === state.searchSeq) { $('#status-text').textContent = ''; showError(t('uploadFailed', { msg: e.message })); }
  } finally {
    if (seq === state.searchSeq) setLoading(false);
  }
}

function selectQuery(id) {
  state.queryId = id;
  state.feedback = { liked: 0, disliked: 0 };
  document.querySelectorAll('.thumb.selected').forEach((t) => t.classList.remove('selected'));
  const t = document.querySelector(`.thumb[data-id="${id}"]`);
  if (t) t.classList.add('selected');
  $('#search-btn').disabled = false;
  runSearch(false);
}

// ---------------------------------------------------------------- browser

// The panel's search box: a file name part, or "#1234" / "1234" to jump to
// that image id (the list then starts there).
function jumpTarget() {
  const m = /^#?(\d{1,9})$/.exec($('#search').value.trim());
  return m ? parseInt(m[1], 10) : null;
}

function browseParams() {
  const p = new URLSearchParams();
  const q = $('#search').value.trim();
  if (q && jumpTarget() === null) p.set('q', q);
  for (const [id, key] of [['#b-design', 'design'], ['#b-season', 'season'], ['#b-quality', 'quality'], ['#b-tag', 'tags']]) {
    if ($(id).value) p.set(key, $(id).value);
  }
  return p;
}

function resetBrowser() {
  const b = state.browse;
  b.offset = 0; b.hasMore = true; b.seq++; b.loading = false; b.total = null;
  const jump = jumpTarget();
  b.after = jump === null ? null : jump - 1;
  document.querySelectorAll('#thumbs .thumb').forEach((t) => t.remove());
  loadMore();
}

async function loadMore() {
  const b = state.browse;
  if (b.loading || !b.hasMore) return;
  b.loading = true;
  const seq = b.seq;
  $('#browser-spinner').hidden = false;
  const p = browseParams();
  // Keyset paging: the next page starts after the last id shown.
  if (b.after !== null) p.set('after', b.after);
  p.set('limit', 60);
  try {
    const data = await api('/api/images?' + p.toString());
    if (seq !== b.seq) return;
    if (data.total !== null) b.total = data.total;
    const box = $('#thumbs');
    for (const im of data.images) {
      const t = el('button', { type: 'button', class: 'thumb', 'data-testid': 'thumb', 'data-id': String(im.id), title: `${im.filename}\n${im.design} · ${im.season} · ${im.quality}\n${im.tags.join(', ')}` });
      if (im.id === state.queryId) t.classList.add('selected');
      t.append(el('img', { src: im.url, alt: im.filename, loading: 'lazy', width: 28, height: 28 }));
      t.append(el('span', { class: 'id' }, String(im.id)));
      t.addEventListener('click', () => selectQuery(im.id));
      box.insertBefore(t, $('#sentinel'));
    }
    b.offset += data.images.length;
    if (data.images.length) b.after = data.images[data.images.length - 1].id;
    b.hasMore = data.has_more;
    $('#browser-count').textContent = b.total === null ? '' :
      t(b.total !== state.meta.images ? 'imagesMatch' : 'imagesCount', { total: number(b.total), shown: number(b.offset) });
  } catch (e) {
    if (seq === b.seq) $('#browser-count').textContent = 'error: ' + e.message;
  } finally {
    if (seq === b.seq) { b.loading = false; $('#browser-spinner').hidden = true; }
  }
  // Keep filling while the sentinel is still visible (tall screens).
  if (seq === b.seq && b.hasMore && isVisible($('#sentinel'))) loadMore();
}

function isVisible(node) {
  const r = node.getBoundingClientRect();
  const box = $('#thumbs').getBoundingClientRect();
  // Below the panel on a desktop, to its right on a phone (a sideways strip).
  return r.top < box.bottom + 200 && r.left < box.right + 200;
}

// ---------------------------------------------------------------- start

function restoreFromHash() {
  if (!location.hash) return null;
  const p = new URLSearchParams(location.hash.slice(1));
  const m = p.get('model');
  if (m && state.meta.models.some((x) => x.model === m)) { $('#model').value = m; fillVersions(false); }
  const v = p.get('version');
  if (v && [...$('#version').options].some((o) => o.value === v)) { $('#version').value = v; onVersionChange(false); }
  const metric = p.get('metric');
  if (metric === 'cosine' || metric === 'euclidean') $('#metric').value = metric;
  if (p.get('n')) $('#n').value = p.get('n');
  for (const key of ['design', 'season', 'quality', 'tags', 'cluster']) {
    const val = p.get(key);
    if (val) for (const x of val.split(',')) state.filters[key].add(x);
  }
  if (p.get('tags_mode') === 'all') state.tagsMode = 'all';
  const id = parseInt(p.get('id'), 10);
  return Number.isFinite(id) && id > 0 ? id : null;
}

// Switches the page's language: the static texts, the filters, the buttons,
// the panel's count and the results on screen.
function setLanguage(next) {
  lang = next;
  localStorage.setItem('benzer-lang', lang);
  $('#lang').value = lang;
  translateStatic();
  renderAccount();
  if (!state.meta) return;
  onVersionChange(true);
  buildFilters();
  updateRefineButton();
  resetBrowser();
  if (state.queryId) {
    state.fromHistory = true;  // the same search: no new history step
    runSearch($('#status').dataset.refine === '1');
  }
}

async function init() {
  translateStatic();
  $('#lang').value = lang;
  $('#lang').addEventListener('change', (e) => setLanguage(e.target.value));
  // The controls never submit (and the page's CSP allows no inline handler).
  document.getElementById('controls').addEventListener('submit', (e) => e.preventDefault());
  // The skip link moves the focus without touching the URL's #state.
  document.querySelector('.skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    $('#results').focus();
  });
  $('#login-form').addEventListener('submit', submitLogin);
  $('#login-cancel').addEventListener('click', () => $('#login').close());
  $('#login-btn').addEventListener('click', openLogin);
  $('#logout-btn').addEventListener('click', logout);
  await loadAccount();
  try {
    state.meta = await api('/api/meta');
  } catch (e) {
    if (e.status === 401) { openLogin(); return; }
    showError(t('metaFailed', { msg: e.message }));
    return;
  }
  renderAccount();
  const meta = state.meta;
  const modelSel = $('#model');
  for (const m of meta.models) modelSel.append(el('option', { value: m.model }, m.model));
  if (!meta.models.length) { showError(t('noVectors')); return; }
  fillVersions(false);
  fillCompare();
  for (const [id, values] of [['#b-design', meta.designs], ['#b-season', meta.seasons], ['#b-quality', meta.qualities], ['#b-tag', meta.tags]]) {
    for (const v of values) $(id).append(el('option', { value: v }, v));
  }
  const restoredId = restoreFromHash();
  buildFilters();
  updateRefineButton();

  modelSel.addEventListener('change', () => { fillVersions(false); runSearch(false); });
  $('#version').addEventListener('change', () => { onVersionChange(true); runSearch(false); });
  $('#metric').addEventListener('change', () => runSearch(false));
  $('#n').addEventListener('change', () => runSearch(false));
  $('#search-btn').addEventListener('click', () => runSearch(false));
  $('#refine-btn').addEventListener('click', () => runSearch(true));
  $('#export-btn').addEventListener('click', exportCsv);
  $('#compare').addEventListener('change', () => runSearch(false));
  $('#upload').addEventListener('change', (e) => searchUpload(e.target.files[0]));
  // A picture pasted anywhere on the page (a screenshot, a copied image).
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) { e.preventDefault(); searchUpload(item.getAsFile()); }
  });
  $('#preview-close').addEventListener('click', () => $('#preview').close());
  window.addEventListener('popstate', restoreHistoryStep);
  $('#clear-filters').addEventListener('click', () => {
    for (const s of Object.values(state.filters)) s.clear();
    document.querySelectorAll('.chip[data-filter]').forEach((c) => c.setAttribute('aria-pressed', 'false'));
    runSearch(false);
  });
  $('#invert').addEventListener('change', (e) => document.body.classList.toggle('invert', e.target.checked));

  let timer = null;
  $('#search').addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(resetBrowser, 250); });
  for (const id of ['#b-design', '#b-season', '#b-quality', '#b-tag']) $(id).addEventListener('change', resetBrowser);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root: $('#thumbs'), rootMargin: '300px' }).observe($('#sentinel'));

  resetBrowser();
  if (restoredId) selectQuery(restoredId);
}

init();
