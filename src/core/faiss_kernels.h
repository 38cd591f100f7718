// faiss_kernels.h: benzer's SIMD kernels inside Faiss's own search loops.
//
// Debian's Faiss is compiled for baseline x86-64, so the distance loops in
// its IVF-Flat list scans and its HNSW graph walks run at scalar speed.
// Faiss exposes two virtual extension points for exactly these loops:
// IndexIVF::get_InvertedListScanner and
// IndexFlatCodes::get_FlatCodesDistanceComputer. install_fast_kernels()
// replaces the plain IndexIVFFlat and IndexFlat objects inside an index with
// subclasses that override them, moving the data across without copying.
// The subclasses serialise exactly as their bases do.
#pragma once

namespace faiss {
struct Index;
}

namespace benzer {

// Returns the index to use from now on (possibly a new top-level object;
// the old one is then freed). Leaves indexes it does not know unchanged.
faiss::Index* install_fast_kernels(faiss::Index* index);

// Switches the replacement off (for benchmarks comparing both paths). When
// disabled, install_fast_kernels returns its argument unchanged.
void set_fast_kernels_enabled(bool enabled);
bool fast_kernels_enabled();

}  // namespace benzer
