# benzer: PGXS build of the PostgreSQL extension.
#
#   make                 build benzer.so
#   make install         install it into the PostgreSQL found by pg_config
#   make installcheck    run the pg_regress tests against a running server
#   make WERROR=1        treat compiler warnings as errors (CI does)
#
# The C++ core is also built on its own by CMake (CMakeLists.txt) for the
# GoogleTest unit tests; both builds compile the same src/core files.

EXTENSION = benzer
EXTVERSION = 0.1.0

MODULE_big = benzer
CORE_OBJS = src/core/vector_text.o src/core/half.o src/core/distance.o src/core/engine.o src/core/faiss_kernels.o \
	src/core/attributes.o src/core/factory.o src/core/ivf_probe.o src/core/search_rounds.o src/core/tuning.o \
	src/core/engine_paged.o src/core/device.o src/core/device_plugin.o
PG_OBJS = src/pg/module.o src/pg/vector_io.o src/pg/vector_ops.o src/pg/faiss_am.o \
	src/pg/faiss_attributes.o \
	src/pg/faiss_pages.o src/pg/faiss_cache.o src/pg/faiss_build.o src/pg/faiss_insert.o \
	src/pg/faiss_scan.o src/pg/faiss_vacuum.o src/pg/faiss_cost.o src/pg/faiss_info.o \
	src/pg/faiss_plan.o src/pg/faiss_view.o src/pg/faiss_access.o src/pg/faiss_search.o src/pg/faiss_limit.o \
	src/pg/faiss_lists.o src/pg/faiss_engine_search.o src/pg/faiss_check.o src/pg/faiss_tails.o src/pg/faiss_rerank.o \
	src/pg/service.o src/pg/service_worker.o src/pg/shard_merge.o src/pg/shard_direct.o src/pg/halfvec.o src/pg/bitvec.o src/pg/sparsevec.o
WORKFLOW_OBJS = src/core/kmeans.o src/core/exact_batch.o src/core/engine_batch.o \
	src/pg/kmeans.o src/pg/batch_search.o src/pg/feedback.o src/pg/index_list.o
OBJS = $(CORE_OBJS) $(PG_OBJS) $(WORKFLOW_OBJS)

# The install script is built from the parts in src/sql, one per concern
# (the type, the index, filter columns, ...), concatenated in name order.
DATA_built = benzer--$(EXTVERSION).sql
EXTRA_CLEAN = benzer--$(EXTVERSION).sql
SQL_PARTS = $(sort $(wildcard $(srcdir)/src/sql/*.sql))

REGRESS = vector_input vector_operators vector_functions vector_casts vector_aggregates halfvec bit sparsevec \
	faiss_build faiss_search faiss_recall faiss_errors faiss_filter faiss_hardening \
	workflow_kmeans workflow_batch workflow_feedback
REGRESS_OPTS = --load-extension=benzer

PG_CONFIG ?= pg_config

# -ffp-contract=off: the distance kernels must not fuse multiply-adds, so all
# SIMD variants return identical results (see src/core/distance.cpp).
PG_CPPFLAGS = -I$(srcdir)/src -I$(libpq_srcdir)
PG_CXXFLAGS = -std=c++17 -fopenmp -ffp-contract=off -Wextra -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-register
ifdef WERROR
PG_CXXFLAGS += -Werror
endif
# Faiss is a static library: keep its symbols out of our dynamic symbol
# table. BLAS and LAPACK resolve to OpenBLAS through Debian's alternatives.
# libpq: the shard merge (shard_merge.cpp) talks to shards over
# postgres_fdw's connections.
SHLIB_LINK_INTERNAL = $(libpq)
SHLIB_LINK = -Wl,--exclude-libs,libfaiss.a -lfaiss -lblas -llapack -fopenmp -lstdc++ -lm -ldl

# Debian's PostgreSQL is built with LLVM JIT and would compile every .cpp
# file to bitcode with clang; our C++ gains nothing from inlining into JIT
# code, so skip it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The distance kernels benefit from -O3 (measured ~15% over -O2).
src/core/distance.o: override CXXFLAGS += -O3

$(OBJS): $(wildcard src/core/*.h src/pg/*.h)

benzer--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $(SQL_PARTS) > $@
