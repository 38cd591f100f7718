#!/usr/bin/python3
"""Load Fashion-MNIST into the benzer demo tables (see demo/schema.sql).

Reads the IDX files of Debian's dataset-fashion-mnist package and streams
them into PostgreSQL with COPY, through psql:

    images    70 000 rows: file name, class ("design"), season, quality,
              tags, train/test split and the 784 raw pixel bytes
    features  140 000 rows: two models per image, version 'v1'
                pixels  784-d, the raw pixel values 0..255 (exactly the
                        ann-benchmarks fashion-mnist-784-euclidean vectors)
                pooled  196-d, 2x2 average pooling of the 28x28 image
              each with a copy of its image's design, season, quality and
              tags (the faiss indexes' filter columns)

Train images get image_id 1..60000 in file order, test images 60001..70000.
Season, quality and tags are deterministic (see demo/README.md), so every
load produces the same rows.  They are computed once per split and written
into both tables.

The load runs in one transaction that first truncates both tables, so it can
be repeated; with wal_level = minimal (the demo cluster's setting) the
truncate lets PostgreSQL skip WAL for the new data, and COPY FREEZE writes
the rows already frozen.

Usage:
    load_fashion_mnist.py                  # load into the database that the
                                           # PG* environment variables name
    load_fashion_mnist.py --limit 6000     # 6000 train + 1000 test images
    load_fashion_mnist.py --stdout > x.sql # a self-contained psql script in
                                           # COPY text format; then: psql -f x.sql

Needs only python3 and python3-numpy (Debian packages) and psql.
"""

import argparse
import gzip
import os
import struct
import subprocess
import sys
import time

import numpy as np

DATASET_DIR = "/usr/share/datasets/fashion-mnist"

# Fashion-MNIST label -> class name (the "design" column).
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SEASONS = ["winter", "spring", "summer", "autumn"]
QUALITIES = ["A", "B", "C"]
N_TRAIN, N_TEST = 60000, 10000
CHUNK = 10000           # images handled at a time (bounds memory use)
TEXT_OID = 25           # pg_type oid of text: the element type of a binary text[]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- reading ---------------------------------------------------------------

def read_idx(path, offset, count):
    """The first `count` records of an IDX file (gzip), as uint8."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    n = int.from_bytes(data[4:8], "big")
    if magic not in (0x801, 0x803) or len(data) < offset:
        sys.exit(f"{path}: not an IDX file")
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    count = min(count, n)
    if magic == 0x803:                       # images: n x 28 x 28
        return arr[: count * 784].reshape(count, 28, 28)
    return arr[:count]                        # labels: n


def read_split(prefix, count):
    images = read_idx(f"{DATASET_DIR}/{prefix}-images-idx3-ubyte.gz", 16, count)
    labels = read_idx(f"{DATASET_DIR}/{prefix}-labels-idx1-ubyte.gz", 8, count)
    if len(images) != len(labels):
        sys.exit(f"{prefix}: {len(images)} images but {len(labels)} labels")
    return images, labels


# --- metadata ----------------------------------------------------------------

def mix64(ids):
    """splitmix64's finaliser: a well-mixed 64-bit hash of each image_id."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def season_quality(ids):
    """Season (1 in 4) and quality (1 in 3) from independent bits of the
    hash: uniform, and uncorrelated with the class or with each other."""
    h = mix64(ids)
    season = (h & np.uint64(0xFFFF)) % np.uint64(4)
    quality = (h >> np.uint64(32)) % np.uint64(3)
    return season.astype(np.int64), quality.astype(np.int64)


def tags(images, labels):
    """2-3 tags per image, from measured image properties (demo/README.md):
    one pattern tag (texture), one material tag (class + brightness) and,
    for very dark or very light items, a tone tag."""
    x = images.astype(np.float32)
    mask = images > 16                                  # the item, not background
    inner = mask.copy()                                 # mask eroded by 1 pixel:
    inner[:, 1:, :] &= mask[:, :-1, :]                  # gradients there are the
    inner[:, :-1, :] &= mask[:, 1:, :]                  # item's texture, not its
    inner[:, :, 1:] &= mask[:, :, :-1]                  # silhouette
    inner[:, :, :-1] &= mask[:, :, 1:]
    n_mask = np.maximum(mask.sum((1, 2)), 1)
    n_inner = np.maximum(inner.sum((1, 2)), 1)
    brightness = (x * mask).sum((1, 2)) / n_mask        # mean grey of the item
    gx = np.zeros_like(x)
    gx[:, :, 1:] = np.abs(x[:, :, 1:] - x[:, :, :-1])   # horizontal changes
    gy = np.zeros_like(x)
    gy[:, 1:, :] = np.abs(x[:, 1:, :] - x[:, :-1, :])   # vertical changes
    gx = (gx * inner).sum((1, 2)) / n_inner
    gy = (gy * inner).sum((1, 2)) / n_inner
    texture = (gx + gy) / 2 / (brightness + 1)          # relative texture energy
    anisotropy = gx / (gx + gy + 1e-6)                  # 0.5 = no direction
    symmetry = 1 - np.abs(x - x[:, :, ::-1]).sum((1, 2)) / (x.sum((1, 2)) + 1)

    pattern = np.where(
        texture < 0.10, "plain",
        np.where((anisotropy > 0.70) | (anisotropy < 0.36), "striped",
                 np.where(texture > 0.25,
                          np.where(symmetry > 0.5, "checked", "dotted"),
                          np.where(symmetry > 0.6, "geometric", "floral"))))

    dark = brightness < 150
    bright = brightness >= 170
    material_by_class = {
        0: np.full(len(labels), "cotton"),              # T-shirt/top
        1: np.where(dark, "denim", "cotton"),           # Trouser
        2: np.full(len(labels), "wool"),                # Pullover
        3: np.where(bright, "silk", "cotton"),          # Dress
        4: np.full(len(labels), "wool"),                # Coat
        5: np.full(len(labels), "leather"),             # Sandal
        6: np.where(bright, "silk", "cotton"),          # Shirt
        7: np.where(dark, "leather", "canvas"),         # Sneaker
        8: np.where(dark, "leather", "canvas"),         # Bag
        9: np.full(len(labels), "leather"),             # Ankle boot
    }
    material = np.empty(len(labels), dtype=object)
    for label, values in material_by_class.items():
        sel = labels == label
        material[sel] = values[sel]

    tone = np.where(brightness < 100, "dark",
                    np.where(brightness >= 200, "light", ""))
    return [(p, m, t) if t else (p, m)
            for p, m, t in zip(pattern.tolist(), material.tolist(), tone.tolist())]


class Metadata:
    """The metadata of one split's images, computed once and written into
    both tables: images has it, and every features row carries a copy (the
    faiss indexes' filter columns).

    text[i]    image i's design, season, quality and tags as COPY text
               fields, each preceded by a tab (it follows another field)
    binary[i]  the same four fields in COPY binary form (length + value each)
    """

    def __init__(self, images, labels, first_id):
        n = len(labels)
        self.first_id = first_id
        season, quality = season_quality(np.arange(first_id, first_id + n))
        tag_lists = []
        for start in range(0, n, CHUNK):
            tag_lists += tags(images[start:start + CHUNK], labels[start:start + CHUNK])
        self.text = []
        self.binary = []
        cache = {}          # few distinct combinations: encode each once
        for key in zip(labels.tolist(), season.tolist(), quality.tolist(), tag_lists):
            enc = cache.get(key)
            if enc is None:
                label, s, q, t = key
                enc = cache[key] = (
                    f"\t{CLASSES[label]}\t{SEASONS[s]}\t{QUALITIES[q]}\t{{{','.join(t)}}}",
                    binary_text(CLASSES[label]) + binary_text(SEASONS[s])
                    + binary_text(QUALITIES[q]) + binary_text_array(t))
            self.text.append(enc[0])
            self.binary.append(enc[1])


def binary_text(value):
    """A text field in COPY binary form: int32 length, UTF-8 bytes."""
    b = value.encode()
    return struct.pack(">i", len(b)) + b


def binary_text_array(values):
    """A one-dimensional text[] field in COPY binary form (array_recv's
    input): length; ndim 1, no NULLs, element type text, size, lower bound
    1; then each element as a text field."""
    body = struct.pack(">iiiii", 1, 0, TEXT_OID, len(values), 1) + b"".join(
        binary_text(v) for v in values)
    return struct.pack(">i", len(body)) + body


# --- COPY data -----------------------------------------------------------------

def images_rows(images, meta, first_id, split):
    """COPY text rows for the images table (image_id, filename, design,
    season, quality, tags, split, pixels)."""
    return "".join([
        f"{first_id + i}\t{split}/{i + 1:06d}.png{meta.text[i]}\t"
        f"{split}\t\\\\x{images[i].tobytes().hex()}\n"
        for i in range(len(images))]).encode()


def embeddings(images, model):
    """The model's embedding of each image, as float32 rows."""
    if model == "pixels":
        return images.reshape(len(images), 784).astype(np.float32)
    # 2x2 average pooling: 28x28 -> 14x14 = 196 values, multiples of 0.25.
    blocks = images.reshape(len(images), 14, 2, 14, 2).astype(np.float32)
    return blocks.mean(axis=(2, 4)).reshape(len(images), 196)


def features_binary(images, meta, first_id, model):
    """COPY binary tuples (image_id, model, version, embedding, design,
    season, quality, tags).  The first four fields have the same layout in
    every tuple of a model, so a numpy record array makes them in bulk; each
    tuple then gets its image's metadata fields (meta.binary, encoded once
    per split) appended."""
    emb = embeddings(images, model)
    n, dim = emb.shape
    mb = model.encode()
    rec = np.dtype([
        ("nfields", ">i2"),
        ("len_id", ">i4"), ("id", ">i4"),
        ("len_model", ">i4"), ("model", f"S{len(mb)}"),
        ("len_version", ">i4"), ("version", "S2"),
        ("len_emb", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
        ("x", ">f4", (dim,)),
    ])
    t = np.zeros(n, dtype=rec)
    t["nfields"] = 8
    t["len_id"] = 4
    t["id"] = np.arange(first_id, first_id + n)
    t["len_model"] = len(mb)
    t["model"] = mb
    t["len_version"] = 2
    t["version"] = b"v1"
    t["len_emb"] = 4 + 4 * dim
    t["dim"] = dim
    t["x"] = emb
    heads = memoryview(t.tobytes())
    size = rec.itemsize
    off = first_id - meta.first_id
    tails = meta.binary[off:off + n]
    parts = []
    for i, tail in enumerate(tails):
        parts.append(heads[i * size:(i + 1) * size])
        parts.append(tail)
    return b"".join(parts)


def features_text(images, meta, first_id, model):
    """COPY text rows (image_id, model, version, embedding, design, season,
    quality, tags).  Every vector value is k or k/4 for an integer k, so a
    table of their shortest texts suffices."""
    if model == "pixels":
        codes = images.reshape(len(images), 784)
        text = [str(k) for k in range(256)]
    else:   # sum of the 4 pixels of each 2x2 block; the value is sum / 4
        codes = images.reshape(len(images), 14, 2, 14, 2).sum(
            axis=(2, 4), dtype=np.int32).reshape(len(images), 196)
        text = [repr(k / 4).removesuffix(".0") for k in range(1021)]
    prefix = f"\t{model}\tv1\t["
    off = first_id - meta.first_id
    tails = meta.text[off:off + len(images)]
    out = []
    for i, row in enumerate(codes.tolist()):
        out.append(f"{first_id + i}{prefix}{','.join([text[c] for c in row])}]{tails[i]}\n")
    return "".join(out).encode()


# --- the stream ------------------------------------------------------------------

def write_stream(out, splits, fmt, self_contained):
    """Writes the load script (SQL + COPY data) to the binary stream `out`."""
    def sql(s):
        out.write(s.encode())

    # Each split's metadata, computed once: images gets it, and each features
    # row a copy.
    metas = [Metadata(images, labels, first_id) for images, labels, first_id, _ in splits]

    if self_contained:
        sql("BEGIN;\n")
    sql("TRUNCATE features, images;\n")
    sql("COPY images (image_id, filename, design, season, quality, tags, split, pixels)"
        " FROM STDIN (FREEZE);\n")
    for (images, labels, first_id, split), meta in zip(splits, metas):
        out.write(images_rows(images, meta, first_id, split))
    sql("\\.\n")
    columns = "image_id, model, version, embedding, design, season, quality, tags"
    if fmt == "binary":
        # psql sends a binary COPY's data up to the end of its input, so this
        # must be the last command (psql --single-transaction commits).
        sql(f"COPY features ({columns}) FROM STDIN (FORMAT binary, FREEZE);\n")
        out.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2)
    else:
        sql(f"COPY features ({columns}) FROM STDIN (FREEZE);\n")
    encode = features_binary if fmt == "binary" else features_text
    for model in ("pixels", "pooled"):
        for (images, labels, first_id, split), meta in zip(splits, metas):
            for start in range(0, len(images), CHUNK):
                out.write(encode(images[start:start + CHUNK], meta, first_id + start, model))
    if fmt == "binary":
        out.write((-1).to_bytes(2, "big", signed=True))
    else:
        sql("\\.\n")
        if self_contained:
            sql("COMMIT;\n")


def main():
    ap = argparse.ArgumentParser(
        description="Load Fashion-MNIST into the benzer demo tables "
                    "(connection from the standard PG* environment variables).")
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="load only the first N train images and N/6 test images")
    ap.add_argument("--stdout", action="store_true",
                    help="write a self-contained psql script (COPY text format) to "
                         "stdout instead of running psql")
    ap.add_argument("--format", choices=["binary", "text"], default="binary",
                    help="COPY format of the features when running psql "
                         "(default binary: about 2x faster to load)")
    ap.add_argument("--psql", default=os.environ.get("PSQL", "psql"),
                    help="psql executable (default: $PSQL or psql)")
    args = ap.parse_args()

    n_train, n_test = N_TRAIN, N_TEST
    if args.limit is not None:
        if args.limit < 1:
            ap.error("--limit must be positive")
        n_train = min(args.limit, N_TRAIN)
        n_test = min(max(args.limit // 6, 1), N_TEST)

    t0 = time.time()
    train_images, train_labels = read_split("train", n_train)
    test_images, test_labels = read_split("t10k", n_test)
    splits = [(train_images, train_labels, 1, "train"),
              (test_images, test_labels, N_TRAIN + 1, "test")]
    n_images = len(train_labels) + len(test_labels)

    if args.stdout:
        write_stream(sys.stdout.buffer, splits, "text", self_contained=True)
        sys.stdout.buffer.flush()
        log(f"wrote {n_images} images, {2 * n_images} features in {time.time() - t0:.1f} s")
        return

    cmd = [args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        write_stream(proc.stdin, splits, args.format, self_contained=False)
        proc.stdin.close()
    except BrokenPipeError:
        pass                      # psql stopped early; its error is on stderr
    rc = proc.wait()
    if rc != 0:
        sys.exit(f"load failed: psql exited with status {rc}")
    log(f"loaded {n_images} images and {2 * n_images} feature rows "
        f"in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
