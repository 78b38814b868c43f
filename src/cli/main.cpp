// vit-infer: command-line front end. Subcommands `classify` (top-k over .npy arrays or
// images) and `info` (resolved configuration); `--version`. Parsing only: the work is in
// classify.cpp / info.cpp. Results go to stdout, logs and errors to stderr.
#include <CLI/CLI.hpp>

#include <exception>
#include <string>

#include "cli/attention.h"
#include "cli/commands.h"

namespace {

void add_model_options(CLI::App* app, vitcli::ModelOptions& m) {
  app->add_option("-m,--model", m.model,
                  "weights file (.safetensors / .npz) or a directory holding one plus config.json; "
                  "default: $VIT_INFER_MODEL, else the bundled demo model (models/demo)");
  app->add_option("--arch", m.arch, "timm architecture name (e.g. vit_base_patch16_224) to fill the config");
  app->add_option("--image-size", m.image_size, "run resolution (square); resamples the position embeddings")
      ->check(CLI::PositiveNumber);
  app->add_option("--heads", m.heads, "number of attention heads (when the config does not say)")
      ->check(CLI::PositiveNumber);
  app->add_option("--eps", m.eps, "LayerNorm epsilon override")->check(CLI::PositiveNumber);
  app->add_option("--pool", m.pool, "global pooling override")->check(CLI::IsMember({"token", "avg"}));
  app->add_option("--labels", m.labels, "class names, one per line (overrides the config's labels)");
  app->add_flag("--json", m.json, "machine-readable output (JSON Lines for classify, one object for info)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vit-infer: Vision Transformer inference (CPU reference and CUDA engines)", "vit-infer"};
  app.set_version_flag("--version", std::string("vit-infer ") + vit_version() + " (C API " +
                                        std::to_string(VIT_API_VERSION) + ")");
  app.require_subcommand(1);

  vitcli::ClassifyOptions c;
  CLI::App* classify = app.add_subcommand(
      "classify",
      "classify inputs and print the top-k classes with softmax probabilities. An INPUT is an "
      "image (PNG / JPEG), a preprocessed float32 .npy array [B,3,H,W] or [3,H,W], a directory "
      "(searched recursively, sorted) or @LIST, a text file with one path per line. Images are "
      "decoded on --decode-threads workers while batches run; results print in input order. A "
      "bad file is reported (stderr, and a JSON error line with --json) and the rest still run; "
      "the exit status is then 1. A model without a classifier (num_classes 0) prints the L2 "
      "norm of each embedding instead; save them with --embeddings-out.");
  add_model_options(classify, c.m);
  classify->add_option("--device", c.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  classify->add_option("--precision", c.precision, "fp32 | fp16 | bf16 | int8 (cpu: fp32 | bf16 | int8; cuda: fp32 | fp16 | bf16)")
      ->check(CLI::IsMember(vitcli::precision_choices()))->capture_default_str();
  classify->add_option("--int8-calibration", c.int8_calibration,
                       "--precision int8: the calibration file (vit-infer calibrate); default: int8_calibration.json "
                       "next to the model when it exists, else (or with 'none') activations are quantised per token at run time");
  classify->add_option("-k,--top-k", c.top_k, "classes to print per image (clamped to num_classes)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  classify->add_option("--logits-out", c.logits_out, "write float32 logits [rows, classes] (.npy), input order");
  classify->add_option("--embeddings-out", c.embeddings_out,
                       "write float32 pooled embeddings [rows, embedding_size] (.npy; the width, or a CLIP projection's), input order");
  classify->add_option("--features-out", c.features_out,
                       "write float32 final tokens [rows, tokens, hidden] (.npy), input order: the prefix tokens "
                       "(cls / dist / registers) then the patches, after the final norm (timm forward_features); "
                       "held in memory until the end");
  classify->add_option("--max-image-size", c.max_image_size,
                       "run .npy arrays of other sizes at their own size (sides multiples of the patch, at most "
                       "this many pixels; the position embeddings resampled per size as the model's framework "
                       "does); 0: every input must have the model's size")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  classify->add_option("--tome", c.tome,
                       "token merging (ToMe, Bolya et al. 2023): merge this many tokens in every block (bipartite "
                       "soft matching on the keys, size-weighted averages, proportional attention; class / "
                       "distillation / register tokens never merged): faster, and the numbers change (see "
                       "docs/ACCURACY.md); at most (tokens - prefix tokens) / 2; not with --features-out; 0: off")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  classify->add_option("-b,--batch", c.batch, "largest batch per run")->check(CLI::PositiveNumber)
      ->capture_default_str();
  classify->add_option("-t,--threads", c.threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  classify->add_option("--gemm", c.gemm, "GEMM: auto | custom | cublaslt (CUDA) | reference (CPU)")
      ->check(CLI::IsMember({"auto", "custom", "cublaslt", "reference"}))->capture_default_str();
  classify->add_flag("--reference", c.reference,
                     "cpu: run the fp32 reference engine (OpenBLAS, the tests' oracle) instead of the fast one");
  classify->add_option("--decode-threads", c.decode_threads,
                       "image decode + preprocessing workers (0 = hardware threads)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  classify->add_flag("--no-progress", c.no_progress, "no progress bar (drawn on stderr only when it is a terminal)");
  classify->add_option("inputs", c.inputs, "images, .npy arrays, directories or @LIST files")->required();

  vitcli::CalibrateOptions cal;
  CLI::App* calibrate = app.add_subcommand(
      "calibrate",
      "int8 calibration: run images through the fp32 forward and write the activation ranges of every "
      "int8 GEMM's input (JSON) for --precision int8 sessions, by default to int8_calibration.json next to "
      "the model, where they find it. A few dozen images like the ones the model will see are enough.");
  add_model_options(calibrate, cal.m);
  calibrate->add_option("--images", cal.images, "images / .npy arrays, directories or @LIST files")->required();
  calibrate->add_option("--out", cal.out, "the file to write (default: int8_calibration.json next to the model)");
  calibrate->add_option("--limit", cal.limit, "use the first N inputs only (0: all)")->check(CLI::NonNegativeNumber);
  calibrate->add_option("-b,--batch", cal.batch, "images per forward")->check(CLI::PositiveNumber)->capture_default_str();
  calibrate->add_option("-t,--threads", cal.threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber);
  calibrate->add_flag("--no-progress", cal.no_progress, "no progress bar (drawn on stderr only when it is a terminal)");

  vitcli::ModelOptions info_opts;
  CLI::App* info = app.add_subcommand("info", "print the resolved model configuration, size and cost");
  add_model_options(info, info_opts);

  vitcli::AttentionOptions attn_opts;
  CLI::App* attention = app.add_subcommand(
      "attention",
      "draw where the model looks: the class token's last-block attention and its attention "
      "rollout over the patch grid, overlaid on the image the model saw (PNG), and/or print "
      "the raw maps and the top-1 class (--json)");
  add_model_options(attention, attn_opts.m);
  vitcli::add_attention_options(attention, attn_opts);

  CLI::App* bench = app.add_subcommand(
      "bench",
      "benchmark the CUDA engine: every argument goes to the vit-bench harness (batches, "
      "precision, warm-up, iterations, CUDA graphs, latency percentiles, memory, --json); "
      "`vit-infer bench --help` lists them");
  bench->prefix_command();  // pass everything after `bench` through untouched
  bench->set_help_flag();   // so that --help reaches vit-bench too

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help / version / the usage error
    return rc == 0 ? vitcli::kExitOk : vitcli::kExitUsage;
  }

  try {
    if (*attention && !vitcli::resolve_default_model(attn_opts.m)) return vitcli::kExitFailure;
    if (*classify) return vitcli::run_classify(c);
    if (*calibrate) return vitcli::run_calibrate(cal);
    if (*info) return vitcli::run_info(info_opts);
    if (*attention) return vitcli::run_attention(attn_opts);
    if (*bench) return vitcli::run_bench(bench->remaining());
  } catch (const std::exception& e) {  // e.g. bad_alloc for a huge --batch: report, never abort
    vitcli::log_error(e.what());
    return vitcli::kExitFailure;
  }
  return vitcli::kExitUsage;
}
