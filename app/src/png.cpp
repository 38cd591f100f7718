#include "png.h"

#include <zlib.h>

#include <stdexcept>
#include <vector>

namespace benzer_app {

namespace {

void put_u32(std::string& out, uint32_t v) {
    out.push_back(static_cast<char>((v >> 24) & 0xff));
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
}

// Appends one chunk: length, type, data, CRC-32 over type and data.
void put_chunk(std::string& out, const char type[4], const std::string& data) {
    put_u32(out, static_cast<uint32_t>(data.size()));
    size_t type_at = out.size();
    out.append(type, 4);
    out += data;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + type_at),
                static_cast<uInt>(4 + data.size()));
    put_u32(out, static_cast<uint32_t>(crc));
}

}  // namespace

std::string encode_png_gray8(const uint8_t* pixels, size_t width, size_t height, int scale,
                             bool invert) {
    if (width == 0 || height == 0 || scale < 1 || scale > 64 || width > 16384 || height > 16384)
        throw std::invalid_argument("bad picture size");
    const size_t w = width * static_cast<size_t>(scale);
    const size_t h = height * static_cast<size_t>(scale);

    // Scanlines, each with filter type 0 (None) in front.
    std::vector<uint8_t> raw;
    raw.reserve((w + 1) * h);
    for (size_t y = 0; y < h; y++) {
        raw.push_back(0);
        const uint8_t* row = pixels + (y / scale) * width;
        for (size_t x = 0; x < w; x++) {
            uint8_t v = row[x / scale];
            raw.push_back(invert ? static_cast<uint8_t>(255 - v) : v);
        }
    }

    uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
    std::string z(zlen, '\0');
    if (compress2(reinterpret_cast<Bytef*>(&z[0]), &zlen, raw.data(),
                  static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK)
        throw std::runtime_error("zlib compress2 failed");
    z.resize(zlen);

    std::string ihdr;
    put_u32(ihdr, static_cast<uint32_t>(w));
    put_u32(ihdr, static_cast<uint32_t>(h));
    ihdr.push_back(8);  // bit depth
    ihdr.push_back(0);  // colour type 0: greyscale
    ihdr.push_back(0);  // compression: deflate
    ihdr.push_back(0);  // filter method 0
    ihdr.push_back(0);  // no interlace

    std::string out("\x89PNG\r\n\x1a\n", 8);
    put_chunk(out, "IHDR", ihdr);
    put_chunk(out, "IDAT", z);
    put_chunk(out, "IEND", std::string());
    return out;
}

}  // namespace benzer_app
