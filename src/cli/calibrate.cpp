// vit-infer CLI: `calibrate`, the int8 calibration of a model (cpu/int8.h through the C API's
// vit_calibration_*): the images (files, directories, @lists, as classify takes them) run through
// the fp32 forward in batches, the per-channel ranges of every int8 GEMM's input are collected and
// written as JSON, by default next to the model (where an int8 session looks for it). A bad input
// is named and nothing is written (exit 1): a calibration is of exactly the images given.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "cli/progress.h"

namespace vitcli {

namespace {

struct CalDeleter {
  void operator()(vit_calibration* c) const noexcept { vit_calibration_free(c); }
};

bool ok(vit_status* st) {
  if (!st) return true;
  log_error(vit_status_get_message(st));
  vit_status_free(st);
  return false;
}

}  // namespace

int run_calibrate(const CalibrateOptions& o_in) {
  CalibrateOptions o = o_in;
  if (!resolve_default_model(o.m)) return kExitFailure;
  vit_load_params lp = o.m.load_params();
  vit_model* raw_model = nullptr;
  if (!ok(vit_model_load(o.m.model.c_str(), &lp, &raw_model))) return kExitFailure;
  std::unique_ptr<vit_model, void (*)(vit_model*)> model(raw_model, vit_model_free);
  vit_model_info mi{};
  if (!ok(vit_model_get_info(model.get(), &mi))) return kExitFailure;
  InputSpec spec;
  spec.channels = mi.in_chans;
  spec.height = mi.image_height;
  spec.width = mi.image_width;
  if (!ok(vit_model_get_preprocess(model.get(), &spec.preprocess))) return kExitFailure;
  spec.patch = mi.patch_size;
  spec.model = model.get();  // images decode as the model's framework reads them (transparency)

  vit_calibration* raw_cal = nullptr;
  if (!ok(vit_calibration_create(model.get(), o.threads, &raw_cal))) return kExitFailure;
  std::unique_ptr<vit_calibration, CalDeleter> cal(raw_cal);

  std::vector<std::string> notes;
  const InputList items = expand_inputs(o.images, &notes);
  for (const std::string& n : notes) log_info(n);
  if (items.empty()) {
    log_error("calibrate: no images in " + o.images.front());
    return kExitFailure;
  }
  const size_t limit = o.limit > 0 ? std::min<size_t>(items.size(), static_cast<size_t>(o.limit)) : items.size();
  const size_t row = static_cast<size_t>(spec.channels) * spec.height * spec.width;
  std::vector<float> batch;
  int in_batch = 0;
  int64_t rows = 0;
  Progress progress(!o.no_progress && isatty(STDERR_FILENO) == 1, limit);
  auto flush = [&] {
    if (in_batch == 0) return true;
    const bool good = ok(vit_calibration_add(cal.get(), batch.data(), in_batch));
    rows += in_batch;
    in_batch = 0;
    batch.clear();
    return good;
  };
  for (size_t i = 0; i < limit; ++i) {
    vit::Tensor t;
    try {
      t = items[i]->load(spec);
    } catch (const std::exception& e) {
      progress.clear();
      log_error(std::string(e.what()) + " (calibrate: nothing written)");
      return kExitFailure;
    }
    const int n = static_cast<int>(t.shape.at(0));
    for (int r = 0; r < n; ++r) {
      batch.insert(batch.end(), t.data.begin() + static_cast<std::ptrdiff_t>(r * row),
                   t.data.begin() + static_cast<std::ptrdiff_t>((r + 1) * row));
      if (++in_batch == o.batch && !flush()) return kExitFailure;
    }
    progress.update(i + 1, rows + in_batch);
  }
  if (!flush()) return kExitFailure;
  progress.update(limit, rows, true);
  progress.clear();
  if (!ok(vit_calibration_save(cal.get(), o.out.empty() ? nullptr : o.out.c_str()))) return kExitFailure;
  log_info("calibrated on " + std::to_string(rows) + " images: wrote " +
           (o.out.empty() ? std::string("int8_calibration.json next to the model") : o.out));
  return kExitOk;
}

}  // namespace vitcli
