-- 020_catalog: the extension's SQL objects as the catalogs see them.
--
-- Every object that belongs to the extension (found through pg_depend, so
-- objects added later are checked too) has a COMMENT; every function is
-- IMMUTABLE, STRICT and PARALLEL SAFE except the few listed below (each with
-- what it must be instead); the aggregates are PARALLEL SAFE and
-- can be combined; the type, casts, operators and operator class are set up
-- as pgvector's are.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

-- The extension's members, described.
CREATE TEMP VIEW members AS
SELECT d.classid, d.objid, d.classid::regclass::text AS catalog,
       pg_describe_object(d.classid, d.objid, d.objsubid) AS description
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'benzer')
  AND d.deptype = 'e';

-- Functions (not aggregates) of the extension.
CREATE TEMP VIEW member_functions AS
SELECT p.oid, p.oid::regprocedure::text AS signature, p.provolatile, p.proisstrict,
       p.proparallel
FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
WHERE p.prokind = 'f';

-- Fixed tests plus one comment test per member and three per function.
SELECT plan(23 + (SELECT count(*)::int FROM members)
               + 3 * (SELECT count(*)::int FROM member_functions));

-- The objects exist ---------------------------------------------------------

SELECT has_extension('benzer', 'extension benzer is installed');
SELECT has_type('vector', 'type vector exists');
SELECT has_opclass('vector_ops', 'operator class vector_ops exists');
SELECT set_has(
    $$SELECT description FROM members$$,
    $$VALUES ('type vector'),
             ('function vector_in(cstring,oid,integer)'),
             ('function vector_out(vector)'),
             ('function vector_typmod_in(cstring[])'),
             ('function vector_recv(internal,oid,integer)'),
             ('function vector_send(vector)'),
             ('function vector(vector,integer,boolean)'),
             ('function array_to_vector(integer[],integer,boolean)'),
             ('function array_to_vector(real[],integer,boolean)'),
             ('function array_to_vector(double precision[],integer,boolean)'),
             ('function array_to_vector(numeric[],integer,boolean)'),
             ('function vector_to_float4(vector,integer,boolean)'),
             ('function l2_distance(vector,vector)'),
             ('function inner_product(vector,vector)'),
             ('function cosine_distance(vector,vector)'),
             ('function l1_distance(vector,vector)'),
             ('function vector_dims(vector)'),
             ('function vector_norm(vector)'),
             ('function l2_normalize(vector)'),
             ('function subvector(vector,integer,integer)'),
             ('function avg(vector)'),
             ('function sum(vector)'),
             ('cast from integer[] to vector'),
             ('cast from real[] to vector'),
             ('cast from double precision[] to vector'),
             ('cast from numeric[] to vector'),
             ('cast from vector to real[]'),
             ('cast from vector to vector'),
             ('operator <->(vector,vector)'),
             ('operator <#>(vector,vector)'),
             ('operator <=>(vector,vector)'),
             ('operator <+>(vector,vector)'),
             ('operator +(vector,vector)'),
             ('operator -(vector,vector)'),
             ('operator *(vector,vector)'),
             ('operator ||(vector,vector)'),
             ('operator =(vector,vector)'),
             ('operator <>(vector,vector)'),
             ('operator <(vector,vector)'),
             ('operator <=(vector,vector)'),
             ('operator >(vector,vector)'),
             ('operator >=(vector,vector)'),
             ('operator class vector_ops for access method btree')$$,
    'the extension owns the pgvector-compatible objects');

-- Every object has a COMMENT ------------------------------------------------

SELECT ok(obj_description(objid, catalog) IS NOT NULL AND obj_description(objid, catalog) <> '',
          'COMMENT on ' || description)
FROM members
ORDER BY catalog, description;

-- Every function is IMMUTABLE, STRICT, PARALLEL SAFE where that is true ------

-- The exceptions, with what they must be instead. Any function not listed
-- must be IMMUTABLE STRICT PARALLEL SAFE; a new function that cannot be has
-- to be added here, with a reason.
CREATE TEMP TABLE function_exceptions (signature text, volatility "char"[], strict boolean,
                                       parallel "char"[], reason text);
INSERT INTO function_exceptions VALUES
    -- Reports the CPU it runs on: the same answer for the same input only on
    -- the same machine, so STABLE is as honest as IMMUTABLE.
    ('benzer_simd_kernel()', '{i,s}', true, '{s}', 'depends on the CPU'),
    -- An index AM handler: called by the server, never in queries.
    ('faiss_handler(internal)', '{i,s,v}', NULL, '{s,r,u}', 'index access method handler'),
    -- Reads the current state of an index.
    ('benzer_index_info(regclass)', '{s,v}', true, '{s,r}', 'reads an index'),
    -- Writes to an index.
    ('benzer_index_merge(regclass,boolean)', '{v}', true, '{u}', 'modifies an index'),
    -- Reads an index and its table under ShareLock.
    ('benzer_index_check(regclass)', '{v}', true, '{u}', 'locks and reads an index and its table'),
    -- Run a query given as text (SPI).
    ('benzer_kmeans(text,integer,integer,boolean,integer,integer)', '{v}', false, '{u}', 'runs a query given as text'),
    ('benzer_kmeans_centroids(text,integer,integer,boolean,integer,integer)', '{v}', false, '{u}', 'runs a query given as text'),
    -- Reads an index and its table under the statement's snapshot.
    ('benzer_batch_search(regclass,vector[],integer,jsonb)', '{s}', false, '{r}', 'reads an index and its table'),
    -- Reads every faiss index's metapage.
    ('benzer_indexes()', '{s,v}', true, '{r}', 'reads every faiss index'),
    -- Reports the search service's live counters.
    ('benzer_search_service()', '{v}', true, '{s}', 'reads the search service''s counters'),
    -- NULL feedback arrays mean "no feedback", so it is not STRICT.
    ('rocchio(vector,vector[],vector[],double precision,double precision,double precision)', '{i}', false, '{s}', 'NULL arrays mean no feedback');

CREATE TEMP VIEW function_expectations AS
SELECT f.signature, f.provolatile, f.proisstrict, f.proparallel,
       coalesce(e.volatility, '{i}') AS volatility, coalesce(e.strict, e.signature IS NULL) AS strict,
       e.signature IS NOT NULL AND e.strict IS NULL AS any_strictness,
       coalesce(e.parallel, '{s}') AS parallel
FROM member_functions f LEFT JOIN function_exceptions e USING (signature);

SELECT ok(provolatile = ANY (volatility),
          signature || CASE WHEN volatility = '{i}' THEN ' is IMMUTABLE'
                            ELSE ' has volatility ' || array_to_string(volatility, ' or ') END)
FROM function_expectations ORDER BY signature;
SELECT ok(any_strictness OR proisstrict = strict,
          signature || CASE WHEN any_strictness THEN ' may be STRICT or not'
                            WHEN strict THEN ' is STRICT' ELSE ' is not STRICT' END)
FROM function_expectations ORDER BY signature;
SELECT ok(proparallel = ANY (parallel),
          signature || CASE WHEN parallel = '{s}' THEN ' is PARALLEL SAFE'
                            ELSE ' has parallel safety ' || array_to_string(parallel, ' or ') END)
FROM function_expectations ORDER BY signature;

-- Aggregates ----------------------------------------------------------------

SELECT is(
    (SELECT proparallel FROM pg_proc WHERE oid = 'avg(vector)'::regprocedure), 's'::"char",
    'avg(vector) is PARALLEL SAFE');
SELECT is(
    (SELECT proparallel FROM pg_proc WHERE oid = 'sum(vector)'::regprocedure), 's'::"char",
    'sum(vector) is PARALLEL SAFE');
SELECT is(
    (SELECT aggcombinefn::regproc::text FROM pg_aggregate WHERE aggfnoid = 'avg(vector)'::regprocedure),
    'vector_combine', 'avg(vector) has a combine function');
SELECT is(
    (SELECT aggcombinefn::regproc::text FROM pg_aggregate WHERE aggfnoid = 'sum(vector)'::regprocedure),
    'vector_add', 'sum(vector) has a combine function');

-- The type ------------------------------------------------------------------

SELECT is(
    (SELECT ARRAY[typinput::text, typoutput::text, typreceive::text, typsend::text, typmodin::text]
     FROM pg_type WHERE oid = 'vector'::regtype),
    ARRAY['vector_in', 'vector_out', 'vector_recv', 'vector_send', 'vector_typmod_in'],
    'vector has text and binary I/O and a typmod');
SELECT is((SELECT typstorage FROM pg_type WHERE oid = 'vector'::regtype), 'e'::"char",
          'vector is stored external (out of line, uncompressed)');
SELECT is(format_type('vector'::regtype, 16000), 'vector(16000)', 'format_type shows the typmod');

-- Casts ---------------------------------------------------------------------

SELECT is(
    (SELECT castcontext FROM pg_cast
     WHERE castsource = 'integer[]'::regtype AND casttarget = 'vector'::regtype),
    'a'::"char", 'integer[] to vector is an assignment cast');
SELECT is(
    (SELECT castcontext FROM pg_cast
     WHERE castsource = 'real[]'::regtype AND casttarget = 'vector'::regtype),
    'a'::"char", 'real[] to vector is an assignment cast');
SELECT is(
    (SELECT castcontext FROM pg_cast
     WHERE castsource = 'double precision[]'::regtype AND casttarget = 'vector'::regtype),
    'a'::"char", 'double precision[] to vector is an assignment cast');
SELECT is(
    (SELECT castcontext FROM pg_cast
     WHERE castsource = 'numeric[]'::regtype AND casttarget = 'vector'::regtype),
    'a'::"char", 'numeric[] to vector is an assignment cast');
SELECT is(
    (SELECT castcontext FROM pg_cast
     WHERE castsource = 'vector'::regtype AND casttarget = 'real[]'::regtype),
    'i'::"char", 'vector to real[] is an implicit cast');
SELECT is(
    (SELECT castcontext FROM pg_cast
     WHERE castsource = 'vector'::regtype AND casttarget = 'vector'::regtype),
    'i'::"char", 'vector(n) length coercion is implicit');

-- Operators -----------------------------------------------------------------

SELECT is(
    (SELECT count(*)::int FROM pg_operator
     WHERE oprname IN ('<->', '<#>', '<=>', '<+>', '+', '*')
       AND oprleft = 'vector'::regtype AND oprright = 'vector'::regtype
       AND oprcom = oid),
    6, 'the distance operators, + and * are their own commutators');
SELECT is(
    (SELECT ARRAY[oprnegate::regoperator::text, oprcanmerge::text]
     FROM pg_operator WHERE oid = '=(vector,vector)'::regoperator),
    ARRAY['<>(vector,vector)', 'true'], '= has <> as negator and supports merge joins');
SELECT is(
    (SELECT oprresult::regtype::text FROM pg_operator WHERE oid = '<->(vector,vector)'::regoperator),
    'double precision', '<-> returns double precision');

-- The btree operator class --------------------------------------------------

SELECT ok(
    (SELECT opcdefault FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
     WHERE c.opcname = 'vector_ops' AND a.amname = 'btree' AND c.opcintype = 'vector'::regtype),
    'vector_ops is the default btree operator class for vector');
SELECT bag_eq(
    $$SELECT o.amopstrategy::int, o.amopopr::regoperator::text
      FROM pg_amop o JOIN pg_opclass c ON c.opcfamily = o.amopfamily
      JOIN pg_am a ON a.oid = c.opcmethod
      WHERE c.opcname = 'vector_ops' AND a.amname = 'btree'$$,
    $$VALUES (1, '<(vector,vector)'), (2, '<=(vector,vector)'), (3, '=(vector,vector)'),
             (4, '>=(vector,vector)'), (5, '>(vector,vector)')$$,
    'vector_ops has the five btree strategies');
SELECT bag_eq(
    $$SELECT p.amprocnum::int, p.amproc::regprocedure::text
      FROM pg_amproc p JOIN pg_opclass c ON c.opcfamily = p.amprocfamily
      JOIN pg_am a ON a.oid = c.opcmethod
      WHERE c.opcname = 'vector_ops' AND a.amname = 'btree'$$,
    $$VALUES (1, 'vector_cmp(vector,vector)')$$,
    'vector_ops has vector_cmp as its support function');

SELECT * FROM finish();
ROLLBACK;
