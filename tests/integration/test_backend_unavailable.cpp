// A backend that cannot run here says why, in its own words (ABI 2.10 unavailable_reason):
// the cuda plugin, built wherever the CUDA Toolkit is, on a machine without a driver or device.
#include <string>

#include <gtest/gtest.h>

#include "backend_options.h"

namespace {

TEST(BackendUnavailable, CudaSaysWhyItCannotRunHere) {
#ifndef TFX_HAVE_CUDA_BACKEND
    GTEST_SKIP() << "the cuda backend was not built (no CUDA Toolkit)";
#else
    tfx::PluginCatalogue catalogue(tfx::paths::plugin_search_path({}));
    for (tfx::PluginRecord& r : catalogue.records()) {
        if (r.kind != "backend" || r.name != "cuda") continue;
        tfx::probe_isolated(r, false);
        if (r.status == tfx::PluginStatus::ok) GTEST_SKIP() << "a CUDA device is here: nothing to explain";
        EXPECT_EQ(r.status, tfx::PluginStatus::unavailable) << r.reason;
        EXPECT_TRUE(r.reason.rfind("no CUDA", 0) == 0 || r.reason.rfind("CUDA cannot", 0) == 0) << r.reason;
        EXPECT_EQ(r.reason.find("the plugin reports"), std::string::npos) << r.reason;
        return;
    }
    FAIL() << "the cuda backend plugin was built but is not installed beside the others";
#endif
}

}  // namespace
