// Query vectors from a user's own picture: decoding, the collection's
// picture format, and one feature extractor per model.
//
// The demo's models are computed from Fashion-MNIST's 28x28 greyscale
// pictures (light items on a black background): "pixels" is the 784 raw
// values, "pooled" the 196 means of 2x2 blocks (demo/load_fashion_mnist.py).
// An uploaded picture is decoded, made greyscale, given a dark background
// when its border is light (a photo of a garment on a table), shrunk to
// 28x28 by area averaging, and handed to the extractor of the chosen model.
//
// A real model plugs in as another FeatureExtractor (its own input size and
// preprocessing, e.g. a call to an inference service) registered under the
// model's name in extractor_for().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace benzer_app {

struct GrayImage {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> pixels;  // row by row, one byte per pixel
};

// Decodes PNG, JPEG, GIF or BMP bytes to 8-bit greyscale. Throws
// std::invalid_argument (with a message for the user) for anything else,
// or for pictures larger than max_side pixels on a side.
GrayImage decode_image(const std::string& bytes, int max_side = 4096);

// The picture in the collection's format: 28x28, dark background.
GrayImage to_collection_format(const GrayImage& image);

class FeatureExtractor {
  public:
    virtual ~FeatureExtractor() = default;
    // The query vector of a picture in the collection's format.
    virtual std::vector<float> extract(const GrayImage& image) const = 0;
};

// The extractor of a model, or nullptr when the app has none for it.
const FeatureExtractor* extractor_for(const std::string& model);

}  // namespace benzer_app
