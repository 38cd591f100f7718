// features.cpp: see features.h.
#include "features.h"

#include "turns.h"

#include <stb_image.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

namespace benzer_app {

namespace {

// At most two pictures are decoded at once: a 4096 x 4096
// picture needs up to 64 MB while it is decoded, and the app has 64
// worker threads. Others wait their turn.
TurnLimit decode_turns(2);

}  // namespace

GrayImage decode_image(const std::string& bytes, int max_side) {
    if (bytes.empty()) throw std::invalid_argument("the upload is empty");
    auto data = reinterpret_cast<const stbi_uc*>(bytes.data());
    int length = static_cast<int>(bytes.size());
    int w = 0, h = 0, channels = 0;
    // The size first: a small file can announce a huge picture.
    if (!stbi_info_from_memory(data, length, &w, &h, &channels))
        throw std::invalid_argument(
            std::string("not a picture this app reads (PNG, JPEG, GIF or BMP): ") +
            stbi_failure_reason());
    if (w < 1 || h < 1 || w > max_side || h > max_side)
        throw std::invalid_argument("the picture is " + std::to_string(w) + "x" +
                                    std::to_string(h) + "; at most " + std::to_string(max_side) +
                                    " pixels on a side");
    TurnLimit::Turn turn(decode_turns);
    std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
        stbi_load_from_memory(data, length, &w, &h, &channels, 1), stbi_image_free);
    if (!pixels)
        throw std::invalid_argument(std::string("the picture cannot be decoded: ") +
                                    stbi_failure_reason());
    GrayImage out;
    out.width = w;
    out.height = h;
    out.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(w) * h);
    return out;
}

namespace {

// Area-averaging shrink (each output pixel is the mean of the input pixels
// it covers, fractional edges weighted); enlarges by nearest neighbour.
GrayImage resize(const GrayImage& in, int w, int h) {
    GrayImage out;
    out.width = w;
    out.height = h;
    out.pixels.resize(static_cast<size_t>(w) * h);
    double sx = static_cast<double>(in.width) / w, sy = static_cast<double>(in.height) / h;
    for (int oy = 0; oy < h; oy++) {
        for (int ox = 0; ox < w; ox++) {
            double y0 = oy * sy, y1 = (oy + 1) * sy, x0 = ox * sx, x1 = (ox + 1) * sx;
            double sum = 0, area = 0;
            for (int iy = static_cast<int>(y0); iy < in.height && iy < y1; iy++) {
                double wy = std::min<double>(iy + 1, y1) - std::max<double>(iy, y0);
                for (int ix = static_cast<int>(x0); ix < in.width && ix < x1; ix++) {
                    double wx = std::min<double>(ix + 1, x1) - std::max<double>(ix, x0);
                    sum += wx * wy * in.pixels[static_cast<size_t>(iy) * in.width + ix];
                    area += wx * wy;
                }
            }
            out.pixels[static_cast<size_t>(oy) * w + ox] =
                static_cast<uint8_t>(area > 0 ? sum / area + 0.5 : 0);
        }
    }
    return out;
}

// The mean of the picture's outermost pixels.
double border_mean(const GrayImage& image) {
    double sum = 0;
    int count = 0;
    for (int y = 0; y < image.height; y++) {
        for (int x = 0; x < image.width; x++) {
            if (y != 0 && x != 0 && y != image.height - 1 && x != image.width - 1) continue;
            sum += image.pixels[static_cast<size_t>(y) * image.width + x];
            count++;
        }
    }
    return count ? sum / count : 0;
}

class PixelsExtractor : public FeatureExtractor {
  public:
    std::vector<float> extract(const GrayImage& image) const override {
        return std::vector<float>(image.pixels.begin(), image.pixels.end());
    }
};

class PooledExtractor : public FeatureExtractor {
  public:
    std::vector<float> extract(const GrayImage& image) const override {
        std::vector<float> out;
        for (int y = 0; y + 1 < image.height; y += 2) {
            for (int x = 0; x + 1 < image.width; x += 2) {
                auto at = [&](int dy, int dx) {
                    return static_cast<float>(
                        image.pixels[static_cast<size_t>(y + dy) * image.width + x + dx]);
                };
                out.push_back((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4);
            }
        }
        return out;
    }
};

}  // namespace

GrayImage to_collection_format(const GrayImage& image) {
    GrayImage out = image.width == 28 && image.height == 28 ? image : resize(image, 28, 28);
    // The collection's items are light on black: a light border means a
    // dark item on a light background, so the picture is inverted.
    if (border_mean(out) > 127)
        for (auto& p : out.pixels) p = static_cast<uint8_t>(255 - p);
    return out;
}

const FeatureExtractor* extractor_for(const std::string& model) {
    static const PixelsExtractor pixels;
    static const PooledExtractor pooled;
    if (model == "pixels") return &pixels;
    if (model == "pooled") return &pooled;
    return nullptr;
}

}  // namespace benzer_app
