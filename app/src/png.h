// A minimal PNG encoder for 8-bit greyscale pictures (the demo's 28x28
// images.pixels): signature, IHDR, one zlib-compressed IDAT, IEND.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace benzer_app {

// Encodes a width x height greyscale picture (row by row, one byte per pixel,
// `pixels` holds width * height bytes) as a PNG file. `scale` >= 1 repeats
// every pixel scale x scale times (nearest neighbour). `invert` stores
// 255 - value. Throws std::invalid_argument on bad sizes and
// std::runtime_error if zlib fails.
std::string encode_png_gray8(const uint8_t* pixels, size_t width, size_t height, int scale = 1,
                             bool invert = false);

}  // namespace benzer_app
