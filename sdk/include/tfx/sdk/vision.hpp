// The steps vision transformers share (ViT, CLIP): checking a forward's pixel_values (ABI 2.8)
// and the patch embedding.
#pragma once

#include <string>
#include <vector>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/layers.hpp"

namespace tfx::sdk {

// A convolution with kernel = stride = `patch` over square images, then a class token: what
// ViT and CLIP call their embeddings before positions. The convolution is the backend's
// gather_rows (the pixels read as rows of `patch` values, gathered patch by patch in the conv
// weight's (channel, row) order) and a linear layer over each patch's values, so it runs on any
// backend with no op of its own.
class PatchEmbedding {
  public:
    PatchEmbedding(const Host& host, int64_t channels, int64_t image_size, int64_t patch)
        : host_(host), channels_(channels), size_(image_size), patch_(patch), side_(image_size / patch) {}

    int64_t patches() const { return side_ * side_; }
    int64_t tokens() const { return patches() + 1; }  // the class token first
    int64_t patch_values() const { return channels_ * patch_ * patch_; }

    // The forward's images, f32 [images, channels, size, size], checked against the model.
    View pixels(const tfx_forward_args* a, const char* family) const {
        const View p = pixel_values(a);
        const int64_t images = a->batch->num_seqs;
        if (p.ndim() != 4 || p.dim(0) != images || p.dim(1) != channels_ || p.dim(2) != size_ || p.dim(3) != size_ ||
            p.dtype() != kF32) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(family) + ": pixel_values must be f32 [images, " +
                                                      std::to_string(channels_) + ", " + std::to_string(size_) + ", " +
                                                      std::to_string(size_) + "]");
        }
        if (a->batch->num_tokens != images * tokens()) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(family) + ": every image must be a sequence of " +
                                                      std::to_string(tokens()) + " tokens");
        }
        return p;
    }

    // x [images * tokens, hidden] = each image's class token, then its patches through
    // `projection` (the conv weight as [hidden, patch_values()], with its bias if any).
    void operator()(const View& pixels, const Linear& projection, const View& class_token, View& x) {
        const int64_t images = pixels.dim(0), hidden = x.dim(1), rows = images * patches() * channels_ * patch_;
        upload_indices(images);
        View values = values_.rows(rows, patch_);
        host_.gather_rows(pixels.reshape({images * channels_ * size_ * side_, patch_}), patch_rows_.view(kI32, {rows}),
                          values);
        // The patches' embeddings, the class token in the row after them, then every image's
        // tokens gathered into place.
        View embedded = embedded_.rows(images * patches() + 1, hidden);
        View patch_embeddings = embedded.at(0, {images * patches(), hidden});
        projection(values.reshape({images * patches(), patch_values()}), patch_embeddings);
        View class_row = embedded.at(images * patches() * hidden, {1, hidden});
        host_.copy(class_token.reshape({1, hidden}), class_row);
        host_.gather_rows(embedded, token_rows_.view(kI32, {images * tokens()}), x);
    }

  private:
    // The gather indices for `images` images, uploaded when the count changes (the class row
    // sits after all of a call's patches).
    void upload_indices(int64_t images) {
        if (images == indexed_images_) return;
        std::vector<int32_t> patch_rows, token_rows;
        for (int64_t s = 0; s < images; ++s) {
            for (int64_t py = 0; py < side_; ++py) {
                for (int64_t px = 0; px < side_; ++px) {
                    for (int64_t ch = 0; ch < channels_; ++ch) {
                        for (int64_t ky = 0; ky < patch_; ++ky) {
                            const int64_t pixel_row = (s * channels_ + ch) * size_ + py * patch_ + ky;
                            patch_rows.push_back(static_cast<int32_t>(pixel_row * side_ + px));
                        }
                    }
                }
            }
            token_rows.push_back(static_cast<int32_t>(images * patches()));
            for (int64_t i = 0; i < patches(); ++i) token_rows.push_back(static_cast<int32_t>(s * patches() + i));
        }
        View patch_view = patch_rows_.view(kI32, {static_cast<int64_t>(patch_rows.size())});
        View token_view = token_rows_.view(kI32, {static_cast<int64_t>(token_rows.size())});
        host_.upload(patch_rows.data(), patch_view);
        host_.upload(token_rows.data(), token_view);
        indexed_images_ = images;
    }

    const Host& host_;
    int64_t channels_, size_, patch_, side_;
    Scratch values_{host_}, embedded_{host_};
    DeviceBuffer patch_rows_{host_}, token_rows_{host_};
    int64_t indexed_images_ = 0;
};

}  // namespace tfx::sdk
