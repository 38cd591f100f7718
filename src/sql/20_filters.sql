-- Filter columns ------------------------------------------------------------
-- Columns after the vector in a faiss index hold filter values; conditions
-- on them (=, IN / = ANY, and && / @> on arrays) restrict the search itself:
--   CREATE INDEX ON catalog USING faiss (embedding vector_cosine_ops, season, tags);
-- Strategy 2 is equality, 3 array overlap, 4 array containment.

CREATE OPERATOR FAMILY integer_faiss_ops USING faiss;
COMMENT ON OPERATOR FAMILY integer_faiss_ops USING faiss IS
    'faiss filter columns of integer types: = and IN, across int2, int4 and int8';
CREATE OPERATOR CLASS int2_faiss_ops DEFAULT FOR TYPE int2 USING faiss FAMILY integer_faiss_ops AS
    OPERATOR 2 = (int2, int2);
COMMENT ON OPERATOR CLASS int2_faiss_ops USING faiss IS 'faiss filter column of type int2';
CREATE OPERATOR CLASS int4_faiss_ops DEFAULT FOR TYPE int4 USING faiss FAMILY integer_faiss_ops AS
    OPERATOR 2 = (int4, int4);
COMMENT ON OPERATOR CLASS int4_faiss_ops USING faiss IS 'faiss filter column of type int4';
CREATE OPERATOR CLASS int8_faiss_ops DEFAULT FOR TYPE int8 USING faiss FAMILY integer_faiss_ops AS
    OPERATOR 2 = (int8, int8);
COMMENT ON OPERATOR CLASS int8_faiss_ops USING faiss IS 'faiss filter column of type int8';
ALTER OPERATOR FAMILY integer_faiss_ops USING faiss ADD
    OPERATOR 2 = (int2, int4),
    OPERATOR 2 = (int2, int8),
    OPERATOR 2 = (int4, int2),
    OPERATOR 2 = (int4, int8),
    OPERATOR 2 = (int8, int2),
    OPERATOR 2 = (int8, int4);

CREATE OPERATOR CLASS bool_faiss_ops DEFAULT FOR TYPE bool USING faiss AS
    OPERATOR 2 = (bool, bool);
COMMENT ON OPERATOR CLASS bool_faiss_ops USING faiss IS
    'faiss filter column of type boolean (= with a parameter; a bare "WHERE flag" is applied above the index)';
COMMENT ON OPERATOR FAMILY bool_faiss_ops USING faiss IS 'faiss filter columns of type boolean';

CREATE OPERATOR CLASS text_faiss_ops DEFAULT FOR TYPE text USING faiss AS
    OPERATOR 2 = (text, text);
COMMENT ON OPERATOR CLASS text_faiss_ops USING faiss IS
    'faiss filter column of type text or varchar: = and IN';
COMMENT ON OPERATOR FAMILY text_faiss_ops USING faiss IS 'faiss filter columns of type text';

CREATE OPERATOR CLASS int2_array_faiss_ops DEFAULT FOR TYPE int2[] USING faiss AS
    OPERATOR 3 && (anyarray, anyarray),
    OPERATOR 4 @> (anyarray, anyarray);
COMMENT ON OPERATOR CLASS int2_array_faiss_ops USING faiss IS 'faiss filter column of type int2[]: && and @>';
COMMENT ON OPERATOR FAMILY int2_array_faiss_ops USING faiss IS 'faiss filter columns of type int2[]';
CREATE OPERATOR CLASS int4_array_faiss_ops DEFAULT FOR TYPE int4[] USING faiss AS
    OPERATOR 3 && (anyarray, anyarray),
    OPERATOR 4 @> (anyarray, anyarray);
COMMENT ON OPERATOR CLASS int4_array_faiss_ops USING faiss IS 'faiss filter column of type int4[]: && and @>';
COMMENT ON OPERATOR FAMILY int4_array_faiss_ops USING faiss IS 'faiss filter columns of type int4[]';
CREATE OPERATOR CLASS int8_array_faiss_ops DEFAULT FOR TYPE int8[] USING faiss AS
    OPERATOR 3 && (anyarray, anyarray),
    OPERATOR 4 @> (anyarray, anyarray);
COMMENT ON OPERATOR CLASS int8_array_faiss_ops USING faiss IS 'faiss filter column of type int8[]: && and @>';
COMMENT ON OPERATOR FAMILY int8_array_faiss_ops USING faiss IS 'faiss filter columns of type int8[]';
CREATE OPERATOR CLASS text_array_faiss_ops DEFAULT FOR TYPE text[] USING faiss AS
    OPERATOR 3 && (anyarray, anyarray),
    OPERATOR 4 @> (anyarray, anyarray);
COMMENT ON OPERATOR CLASS text_array_faiss_ops USING faiss IS 'faiss filter column of type text[] (tags): && and @>';
COMMENT ON OPERATOR FAMILY text_array_faiss_ops USING faiss IS 'faiss filter columns of type text[]';
