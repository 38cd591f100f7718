-- 100_type_input_fuzz: random text fed to the vector, halfvec and sparsevec
-- input functions. Every string either reads, and then its output reads
-- back to an equal value and prints the same, or fails with a data error
-- (SQLSTATE class 22, or 54 for limits): never another error, never a
-- crashed backend. The strings are literals built from numbers, indices and
-- counts on both sides of every limit, then mutated by a character or two,
-- so many are near misses of valid ones.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(9);

SELECT setseed(0.15);

-- One element of a pool, at random.
CREATE FUNCTION pg_temp.pick(pool text[]) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT pool[1 + floor(random() * array_length(pool, 1))::int]
$$;

-- s with one character replaced, inserted or deleted at random (a third of
-- the time each), the new character from alphabet.
CREATE FUNCTION pg_temp.mutate(s text, alphabet text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    at int := 1 + floor(random() * greatest(length(s), 1))::int;
    c text := substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1);
    r float8 := random();
BEGIN
    IF r < 0.33 THEN RETURN overlay(s PLACING c FROM at FOR 1); END IF;
    IF r < 0.66 THEN RETURN overlay(s PLACING c FROM at FOR 0); END IF;
    RETURN overlay(s PLACING '' FROM at FOR 1);
END
$$;

-- Numbers and near-numbers, in and out of float4's and binary16's ranges.
CREATE FUNCTION pg_temp.number() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT pg_temp.pick(ARRAY['1', '-2.5', '0', '-0', '.5', '5.', '1e3', '+3', '1e-7', '1e-46',
        '4e38', '3.4028235e38', '65504', '65520', '-65519', '1e', 'NaN', 'Infinity', '0x10',
        ' 7 ', '123456789', '1.5e-5'])
$$;

-- A literal of type: structurally valid most of the time, then mutated
-- zero to two times.
CREATE FUNCTION pg_temp.literal(type text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s text;
    n int := floor(random() * 5)::int;
BEGIN
    IF type = 'sparsevec' THEN
        SELECT '{' || coalesce(string_agg(pg_temp.pick(ARRAY['1', '2', '3', '4', '5', '6', '7', '0',
                   '-1', '2147483648', ' 8 ']) || ':' || pg_temp.number(), ','), '') || '}/'
               || pg_temp.pick(ARRAY['9', '9', '9', '5', '0', '-1', '1000000001', '9223372036854775808', ''])
        INTO s FROM generate_series(1, n);
    ELSE
        SELECT '[' || coalesce(string_agg(pg_temp.number(), ','), '') || ']'
        INTO s FROM generate_series(1, n);
    END IF;
    FOR i IN 1..floor(random() * 3)::int LOOP
        s := pg_temp.mutate(s, '[]{}:/,.-+e 019');
    END LOOP;
    RETURN s;
END
$$;

-- Feeds n strings to type's input; returns counts of strings read, data
-- errors, and anything else (the third must be 0), and of values whose
-- output did not read back to the same value and text (must be 0).
CREATE FUNCTION pg_temp.fuzz(type text, n int,
                             OUT accepted int, OUT refused int, OUT other int, OUT unstable int)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    literal text;
    printed text;
    reprinted text;
    same boolean;
BEGIN
    accepted := 0; refused := 0; other := 0; unstable := 0;
    FOR i IN 1..n LOOP
        literal := pg_temp.literal(type);
        BEGIN
            EXECUTE format('SELECT (%L::%s)::text', literal, type) INTO printed;
            EXECUTE format('SELECT (%L::%s)::text, %L::%s = %L::%s', printed, type,
                           printed, type, literal, type) INTO reprinted, same;
            IF reprinted IS DISTINCT FROM printed OR NOT same THEN
                unstable := unstable + 1;
                RAISE NOTICE 'unstable % input %: % then %', type, literal, printed, reprinted;
            END IF;
            accepted := accepted + 1;
        EXCEPTION
            WHEN data_exception OR program_limit_exceeded THEN
                refused := refused + 1;
            WHEN OTHERS THEN
                other := other + 1;
                RAISE NOTICE '% input %: % %', type, literal, SQLSTATE, SQLERRM;
        END;
    END LOOP;
END
$$;

CREATE TEMP TABLE runs AS
SELECT t.type, f.*
FROM unnest(ARRAY['vector', 'halfvec', 'sparsevec']) t(type), pg_temp.fuzz(t.type, 4000) f;

SELECT is(other, 0, type || ': every refused string is a data error') FROM runs ORDER BY type;
SELECT is(unstable, 0, type || ': every accepted string prints, and reads back, the same')
FROM runs ORDER BY type;
-- The strings must reach both outcomes, or the test proves little.
SELECT ok(accepted >= 200 AND refused >= 400,
          format('%s: %s read and %s refused of 4000', type, accepted, refused))
FROM runs ORDER BY type;

SELECT * FROM finish();
ROLLBACK;
