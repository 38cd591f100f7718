// device_plugin.cpp: the GPU device, through the CUDA plugin's C table
// (src/gpu/device_abi.h) loaded with dlopen.
//
// The library stays loaded for the life of the process once a device was
// opened (a CUDA context cannot be torn down and set up again cheaply); a
// library that offers no device is closed again at once.
#include <dlfcn.h>

#include <cstring>

#include "device.h"
#include "error.h"
#include "gpu/device_abi.h"

namespace benzer {

namespace {

constexpr std::size_t kErrorSize = 512;

[[noreturn]] void raise_plugin_error(const char* what, const char* message) {
    throw Error(ErrorKind::kInternal, std::string("GPU plugin: ") + what + ": " + message);
}

class GpuRows final : public DeviceRows {
  public:
    GpuRows(const BenzerDeviceApi* api, void* handle, std::int64_t n, int dim, std::size_t bytes)
        : api_(api), handle_(handle), n_(n), dim_(dim), bytes_(bytes) {}
    ~GpuRows() override { api_->release(handle_); }
    GpuRows(const GpuRows&) = delete;
    GpuRows& operator=(const GpuRows&) = delete;
    std::int64_t count() const override { return n_; }
    int dim() const override { return dim_; }
    std::size_t bytes() const override { return bytes_; }
    void* handle() const { return handle_; }

  private:
    const BenzerDeviceApi* api_;
    void* handle_;
    std::int64_t n_;
    int dim_;
    std::size_t bytes_;
};

class GpuDevice final : public Device {
  public:
    GpuDevice(const BenzerDeviceApi* api, std::string name) : api_(api), name_(std::move(name)) {}
    std::string name() const override { return "gpu: " + name_; }
    bool is_gpu() const override { return true; }

    std::unique_ptr<DeviceRows> upload(const float* rows, std::int64_t n, int dim) override {
        char error[kErrorSize] = "";
        void* handle = nullptr;
        std::size_t bytes = 0;
        if (api_->upload(rows, n, dim, &handle, &bytes, error, sizeof error) != 0)
            raise_plugin_error("upload", error);
        return std::make_unique<GpuRows>(api_, handle, n, dim, bytes);
    }

    void candidates(const DeviceRows& device_rows, ExactScore score, const DeviceQuery* queries,
                    std::int64_t nq, std::int64_t kk, Label* labels) override {
        if (kk > BENZER_DEVICE_MAX_CANDIDATES)
            throw Error(ErrorKind::kInvalidParameter,
                        "more candidates per query than the GPU plugin selects");
        const auto& rows = dynamic_cast<const GpuRows&>(device_rows);
        std::vector<BenzerDeviceQuery> plain(static_cast<std::size_t>(nq));
        for (std::int64_t q = 0; q < nq; q++) plain[q] = {queries[q].vector, queries[q].allowed};
        char error[kErrorSize] = "";
        if (api_->candidates(rows.handle(), score == ExactScore::kL2Squared ? 0 : 1, plain.data(),
                             nq, kk, labels, error, sizeof error) != 0)
            raise_plugin_error("search", error);
    }

    void assign(const float* centroids, std::int64_t nc, const float* rows, std::int64_t n, int dim,
                std::int64_t* nearest, float* distances) override {
        char error[kErrorSize] = "";
        if (api_->assign(centroids, nc, rows, n, dim, nearest, distances, error, sizeof error) != 0)
            raise_plugin_error("k-means assignment", error);
    }

  private:
    const BenzerDeviceApi* api_;
    std::string name_;
};

}  // namespace

std::unique_ptr<Device> load_gpu_device(const std::string& path, std::string* why) {
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char* message = dlerror();
        *why = std::string("cannot load ") + path + ": " + (message ? message : "unknown error");
        return nullptr;
    }
    auto entry = reinterpret_cast<BenzerDeviceApiFunction>(dlsym(library, "benzer_device_api"));
    const BenzerDeviceApi* api = entry != nullptr ? entry() : nullptr;
    if (api == nullptr || api->abi_version != BENZER_DEVICE_ABI_VERSION) {
        *why = path + " is not a benzer GPU plugin of interface version " +
               std::to_string(BENZER_DEVICE_ABI_VERSION);
        dlclose(library);
        return nullptr;
    }
    char name[256] = "";
    char error[kErrorSize] = "";
    if (api->open(name, sizeof name, error, sizeof error) != 0) {
        *why = std::string("no GPU: ") + error;
        dlclose(library);
        return nullptr;
    }
    return std::make_unique<GpuDevice>(api, name);
}

}  // namespace benzer
