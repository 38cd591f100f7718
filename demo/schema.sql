-- benzer demo: the "find similar fabric pattern" tables (README.md, "What
-- benzer is"), filled with Fashion-MNIST by demo/load_fashion_mnist.py.
--
--   images    one row per picture, with its metadata
--   features  one feature vector per picture, model and model version, with
--             a copy of the picture's metadata (design, season, quality,
--             tags): a faiss index can filter only on columns of the table
--             it indexes (demo/indexes.sql)

CREATE EXTENSION IF NOT EXISTS benzer;

CREATE TABLE images (
    image_id  integer PRIMARY KEY,
    filename  text    NOT NULL UNIQUE,
    design    text    NOT NULL,   -- Fashion-MNIST class name (T-shirt/top, Trouser, Pullover,
                                  -- Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot)
    season    text    NOT NULL CHECK (season IN ('winter', 'spring', 'summer', 'autumn')),
    quality   text    NOT NULL CHECK (quality IN ('A', 'B', 'C')),
    tags      text[]  NOT NULL,
    split     text    NOT NULL CHECK (split IN ('train', 'test')),
    pixels    bytea   NOT NULL CHECK (length(pixels) = 784),
    -- the target of features' foreign key on its metadata copies (below)
    UNIQUE (image_id, design, season, quality, tags)
);

COMMENT ON TABLE images IS
    'one picture of a product or fabric pattern and its metadata (the demo uses Fashion-MNIST)';
COMMENT ON COLUMN images.image_id IS
    'train images 1..60000 in file order, test images 60001..70000';
COMMENT ON COLUMN images.filename IS
    'name of the picture, e.g. train/000001.png or test/000001.png (1-based index within its split)';
COMMENT ON COLUMN images.design IS
    'the design, here the Fashion-MNIST class name: T-shirt/top, Trouser, Pullover, Dress, '
    'Coat, Sandal, Shirt, Sneaker, Bag or Ankle boot';
COMMENT ON COLUMN images.season IS
    'winter, spring, summer or autumn: synthetic, from a hash of image_id (1 in 4, independent of design)';
COMMENT ON COLUMN images.quality IS
    'A, B or C: synthetic, from other bits of the same hash (1 in 3, independent of design and season)';
COMMENT ON COLUMN images.tags IS
    '2-3 feature tags measured on the picture: one pattern tag (plain, striped, checked, dotted, '
    'geometric, floral), one material tag (cotton, denim, wool, silk, leather, canvas) and for very '
    'dark or light items a tone tag (dark, light); see demo/README.md';
COMMENT ON COLUMN images.split IS
    'train or test: the Fashion-MNIST split the picture comes from';
COMMENT ON COLUMN images.pixels IS
    'the 28x28 greyscale picture: 784 bytes, row by row, 0 = background, 255 = brightest';

-- toast_tuple_target = 8160 keeps each vector inside its table row when the
-- row fits in a page (vectors up to ~2 000 dimensions).  The vector type's
-- storage is EXTERNAL, and with the default target (~2 KB) a 784-d vector
-- (3 144 bytes) would be moved out of line into the TOAST table: every
-- distance computation of a scan would first fetch its vector through the
-- TOAST index.  Measured here on the exact top-10 query over the 70 000
-- pixels vectors: ~360 ms out of line, ~110 ms in line (3.3x).  SET STORAGE
-- PLAIN on the column is as fast, but then a row that does not fit in a page
-- (a vector over ~2 000 dimensions) is an error; with this setting such a
-- vector is still stored, out of line.
--
-- design, season, quality and tags are copies of the image's metadata.  The
-- app filters on them, and a faiss index applies a filter inside its search
-- only for columns of the indexed table that it carries after the vector
-- (demo/indexes.sql); a condition on a joined images column would be checked
-- above the index scan instead.  The foreign key over image_id and the four
-- copies guarantees they equal the image's values, and ON UPDATE CASCADE
-- carries a change of an image's metadata into its features rows.
CREATE TABLE features (
    image_id   integer NOT NULL,
    model      text    NOT NULL,
    version    text    NOT NULL,
    embedding  vector  NOT NULL,
    design     text    NOT NULL,
    season     text    NOT NULL,
    quality    text    NOT NULL,
    tags       text[]  NOT NULL,
    PRIMARY KEY (image_id, model, version),
    FOREIGN KEY (image_id, design, season, quality, tags)
        REFERENCES images (image_id, design, season, quality, tags) ON UPDATE CASCADE
) WITH (toast_tuple_target = 8160);

COMMENT ON TABLE features IS
    'feature vectors: one per image, model and model version';
COMMENT ON COLUMN features.image_id IS 'the image the vector describes';
COMMENT ON COLUMN features.model IS
    'feature extractor: pixels (784-d raw pixel values 0..255, the ann-benchmarks '
    'fashion-mnist-784-euclidean vectors) or pooled (196-d, 2x2 average pooling of the 28x28 picture)';
COMMENT ON COLUMN features.version IS 'version of the model, e.g. v1';
COMMENT ON COLUMN features.embedding IS
    'the feature vector; compare with <-> (L2), <=> (cosine), <#> (negative inner product), <+> (L1)';
COMMENT ON COLUMN features.design IS
    'copy of images.design of the image, kept here so that a faiss index can filter on it '
    'inside its search; the foreign key keeps it equal to the image''s value';
COMMENT ON COLUMN features.season IS
    'copy of images.season of the image, kept here so that a faiss index can filter on it '
    'inside its search; the foreign key keeps it equal to the image''s value';
COMMENT ON COLUMN features.quality IS
    'copy of images.quality of the image, kept here so that a faiss index can filter on it '
    'inside its search; the foreign key keeps it equal to the image''s value';
COMMENT ON COLUMN features.tags IS
    'copy of images.tags of the image, kept here so that a faiss index can filter on it '
    '(&&, @>) inside its search; the foreign key keeps it equal to the image''s value';
