-- benzer demo: the tables of the pattern-search web app (app/), after
-- demo/schema.sql and the data load. scripts/demo.sh and test/e2e/run.sh
-- run it; it can be run again.
--
--   clusters  each image's k-means cluster per model and version, filled
--             with benzer_kmeans() when this benzer has it (k = 10, the
--             seed app's 300 iterations); the app shows the cluster and
--             filters on it, and shows "-" when there is none
--   feedback  the thumbs up / down each user gives a result image for a
--             query image, model and version; the app's "refine" search
--             moves the query vector with rocchio() towards the user's liked
--             results and away from the disliked ones
--   app_users, app_sessions
--             who may vote (and, with --require-login, search): Argon2id
--             password strings and the SHA-256 of each session's cookie
--             token; benzer-app --add-user NAME creates a user
--
-- Neither table has a foreign key to features: the demo reloads features
-- with DROP TABLE ... CASCADE, and the app checks ids itself. Clusters are
-- computed again when their row count no longer matches the features of a
-- model version (another --limit, new vectors).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS clusters (
    image_id  integer NOT NULL,
    model     text    NOT NULL,
    version   text    NOT NULL,
    cluster   integer NOT NULL,
    distance  double precision,           -- to the cluster's centroid
    PRIMARY KEY (image_id, model, version)
);
COMMENT ON TABLE clusters IS
    'k-means cluster (0..k-1) of each image per feature model and version (benzer_kmeans), shown and filtered on by the app';
-- The app reads a cluster's members when a cluster filter leaves out the
-- query image's own cluster (app/src/main.cpp, similar_by_cluster_sql).
CREATE INDEX IF NOT EXISTS clusters_model_version_cluster ON clusters (model, version, cluster);

CREATE TABLE IF NOT EXISTS app_users (
    user_id        serial  PRIMARY KEY,
    name           text    NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    password_hash  text    NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    is_admin       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE app_users IS
    'users of the pattern-search app: name and Argon2id password string (benzer-app --add-user)';

CREATE TABLE IF NOT EXISTS app_sessions (
    token_sha256  text    PRIMARY KEY,      -- hex SHA-256 of the cookie's token
    user_id       integer NOT NULL REFERENCES app_users ON DELETE CASCADE,
    csrf_token    text    NOT NULL,         -- sent back in X-CSRF-Token
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
COMMENT ON TABLE app_sessions IS
    'logged-in sessions of the app: the SHA-256 of each session cookie (not the cookie), its CSRF token and expiry';
CREATE INDEX IF NOT EXISTS app_sessions_expires_at ON app_sessions (expires_at);

CREATE TABLE IF NOT EXISTS feedback (
    user_id     integer  NOT NULL,        -- app_users.user_id of who voted
    query_id    integer  NOT NULL,        -- the image the user searched from
    result_id   integer  NOT NULL,        -- the result the user judged
    model       text     NOT NULL,
    version     text     NOT NULL,
    vote        smallint NOT NULL CHECK (vote IN (-1, 1)),   -- 1 thumb up, -1 thumb down
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, query_id, model, version, result_id),
    CHECK (query_id <> result_id)
);
-- A feedback table from before users: its votes become user 0's (nobody
-- logs in as 0), and the key takes the user first.
ALTER TABLE feedback ADD COLUMN IF NOT EXISTS user_id integer NOT NULL DEFAULT 0;
ALTER TABLE feedback ALTER COLUMN user_id DROP DEFAULT;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                   WHERE i.indrelid = 'feedback'::regclass AND i.indisprimary
                     AND a.attname = 'user_id') THEN
        ALTER TABLE feedback DROP CONSTRAINT IF EXISTS feedback_pkey;
        ALTER TABLE feedback ADD PRIMARY KEY (user_id, query_id, model, version, result_id);
    END IF;
END $$;
COMMENT ON TABLE feedback IS
    'thumbs up (1) or down (-1) on a search result, per user, query image, model and version: each user''s latest vote';

-- Fill clusters for every model version whose clusters are missing or stale.
SET client_min_messages = notice;
SET maintenance_work_mem = '1GB';
DO $$
DECLARE
    mv record;
    n_clusters bigint;
    t0 timestamptz;
    spherical boolean;
BEGIN
    IF to_regprocedure('benzer_kmeans(text, integer, integer, boolean, integer, integer)') IS NULL THEN
        RAISE WARNING 'benzer_kmeans() is not installed: the clusters table stays empty (the app shows "-")';
        RETURN;
    END IF;
    FOR mv IN SELECT model, version, count(*) AS n FROM features GROUP BY 1, 2 ORDER BY 1, 2 LOOP
        SELECT count(*) INTO n_clusters FROM clusters WHERE model = mv.model AND version = mv.version;
        IF n_clusters = mv.n THEN
            CONTINUE;
        END IF;
        t0 := clock_timestamp();
        -- Spherical k-means (by direction) for a model whose faiss index is a
        -- cosine one; plain L2 k-means otherwise.
        spherical := EXISTS (
            SELECT FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am a ON a.oid = c.relam AND a.amname = 'faiss'
            JOIN pg_opclass o ON o.oid = i.indclass[0] AND o.opcname = 'vector_cosine_ops'
            WHERE i.indrelid = 'features'::regclass
              AND pg_get_expr(i.indpred, i.indrelid) LIKE '%' || quote_literal(mv.model) || '%');
        DELETE FROM clusters WHERE model = mv.model AND version = mv.version;
        INSERT INTO clusters (image_id, model, version, cluster, distance)
        SELECT k.id, mv.model, mv.version, k.cluster, k.distance
        FROM benzer_kmeans(format('SELECT image_id, embedding FROM features WHERE model = %L AND version = %L',
                                  mv.model, mv.version),
                           10, 300, spherical) k;
        RAISE NOTICE 'clusters: % / %: % rows in 10 clusters (%k-means), % s', mv.model, mv.version, mv.n,
            CASE WHEN spherical THEN 'spherical ' ELSE '' END,
            round(extract(epoch FROM clock_timestamp() - t0)::numeric, 1);
    END LOOP;
END
$$;
ANALYZE clusters, feedback;

SELECT model, version, count(DISTINCT cluster) AS clusters, count(*) AS images,
       min(n) AS smallest, max(n) AS largest
FROM (SELECT model, version, cluster, count(*) OVER (PARTITION BY model, version, cluster) AS n FROM clusters) s
GROUP BY 1, 2 ORDER BY 1, 2;
