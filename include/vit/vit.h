/* vit-infer C API.
 *
 * Opaque handles, statuses that carry messages, *_default_params() for every params
 * struct. Every fallible call returns a vit_status* : NULL means success; otherwise the
 * caller owns the status and frees it with vit_status_free(). Release functions accept
 * NULL. Nothing in the library exits or aborts.
 *
 * Thread-safety: a vit_model is immutable once loaded and may be shared by any number of
 * sessions and threads. A vit_session serialises its runs with an internal lock, so it may
 * be called from several threads (calls queue); for parallel throughput create one session
 * per thread. vit_session_cancel() may be called from any thread at any time.
 *
 * Lifetimes: a session keeps its own reference to the model's weights, so the vit_model may
 * be freed before its sessions. Strings returned by vit_model_* stay valid while the model
 * handle lives; a status message stays valid until vit_status_free().
 *
 * Only vit_* symbols are exported. The C++ wrapper include/vit/vit.hpp lives in namespace
 * `vitpp` (the library's internal C++ code uses namespace `vit`).
 */
#ifndef VIT_VIT_H_
#define VIT_VIT_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define VIT_API __declspec(dllexport)
#else
#define VIT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define VIT_API_VERSION 1
#define VIT_VERSION_STRING "0.1.0"

/* Every enum has a VIT_<NAME>_FORCE_INT = 0x7fffffff member, so that it is int-sized in every
 * C ABI (also with -fshort-enums), and in C++ the fixed underlying type int, so that any int
 * a caller stores in an enum field is a valid value of the type; the library checks the
 * value and rejects an unknown one with VIT_ERR_INVALID_ARGUMENT naming the field. */
#ifdef __cplusplus
#define VIT_ENUM_INT : int
#else
#define VIT_ENUM_INT
#endif

typedef enum vit_status_code VIT_ENUM_INT {
  VIT_OK = 0,
  VIT_ERR_INVALID_ARGUMENT = 1,
  VIT_ERR_IO = 2,
  VIT_ERR_FORMAT = 3,
  VIT_ERR_UNSUPPORTED = 4,
  VIT_ERR_OUT_OF_MEMORY = 5,
  VIT_ERR_DEVICE = 6,
  VIT_ERR_CANCELLED = 7,
  VIT_ERR_INTERNAL = 8,
  VIT_STATUS_CODE_FORCE_INT = 0x7fffffff
} vit_status_code;

typedef struct vit_status vit_status;
typedef struct vit_model vit_model;
typedef struct vit_session vit_session;

/* ---- status ---- */
VIT_API vit_status_code vit_status_get_code(const vit_status* st); /* NULL -> VIT_OK */
VIT_API const char* vit_status_get_message(const vit_status* st);  /* NULL -> "ok" */
VIT_API void vit_status_free(vit_status* st);
VIT_API const char* vit_version(void); /* VIT_VERSION_STRING of the library actually loaded */
/* Short name of a code ("ok", "invalid argument", "I/O error", ...); never NULL. */
VIT_API const char* vit_status_code_name(vit_status_code code);

/* ---- model ---- */
typedef enum vit_pool VIT_ENUM_INT {
  VIT_POOL_DEFAULT = 0,
  VIT_POOL_TOKEN = 1,
  VIT_POOL_AVG = 2,
  VIT_POOL_FORCE_INT = 0x7fffffff
} vit_pool;

/* Params structs are versioned by size: struct_size is their first field, and
 * *_default_params() sets it to sizeof the struct of the vit.h the caller compiled against.
 * The library reads only the fields that lie within struct_size and takes defaults for the
 * rest, so fields can be appended later without breaking callers built against an older
 * header. struct_size 0 (a zero-initialised struct) means the first version's fields
 * (VIT_*_PARAMS_V1_SIZE); a struct_size larger than the library knows is refused. */
typedef struct vit_load_params {
  uint32_t struct_size;     /* sizeof(vit_load_params), set by vit_load_default_params() */
  const char* architecture; /* timm architecture name, or NULL */
  int image_size;           /* run resolution (square); 0 = the checkpoint's */
  int num_heads;            /* 0 = from config / architecture / shapes */
  float layer_norm_eps;     /* 0 = from config / layout default */
  vit_pool pool;            /* VIT_POOL_DEFAULT = from config */
  const char* labels_file;  /* one label per line, or NULL */
} vit_load_params;

VIT_API vit_load_params vit_load_default_params(void);
/* path: a .safetensors / .npz file, or a directory holding one and its config.json. */
VIT_API vit_status* vit_model_load(const char* path, const vit_load_params* params, vit_model** out);
VIT_API void vit_model_free(vit_model* model);

typedef struct vit_model_info {
  int image_height, image_width, patch_size, in_chans;
  int hidden_size, depth, num_heads, head_dim, mlp_size, num_classes;
  int num_tokens; /* patches + prefix tokens (class, distillation, registers; none without a
                     class token): (image_height / patch_size) * (image_width / patch_size) + prefix */
  float layer_norm_eps;
  vit_pool pool;
  int64_t param_count;
  double flops_per_image;
} vit_model_info; /* its layout is fixed: new model facts come as getter functions below */

VIT_API vit_status* vit_model_get_info(const vit_model* model, vit_model_info* out);
/* Width of vit_outputs.embeddings: hidden_size, or the projection's width for a model whose
 * embeddings are projected (HF CLIPVisionModelWithProjection: image_embeds). 0 for NULL. */
VIT_API int vit_model_get_embedding_size(const vit_model* model);
/* Tokens T of a run at height x width pixels: the prefix tokens (class, distillation, registers)
 * plus floor(height / patch) * floor(width / patch); the model's own size gives
 * vit_model_info.num_tokens. -1 for a NULL model or a side smaller than the patch. */
VIT_API int vit_model_get_num_tokens(const vit_model* model, int height, int width);
/* Multi-line human-readable description of the resolved configuration (architecture,
 * layout, sizes, eps, pooling, preprocessing), as `vit-infer info` prints it. */
VIT_API const char* vit_model_describe(const vit_model* model); /* NULL model -> "" */

/* How images must be prepared for this model (timm pretrained_cfg / HF preprocessor_config).
 * Pixels: x * rescale, then (x - mean[c]) / std[c], CHW order. The output size is the
 * model's run size (vit_model_info image_height x image_width). */
typedef enum vit_resize_mode VIT_ENUM_INT {
  VIT_RESIZE_SHORTEST_THEN_CROP = 0, /* shorter side to size / crop_pct, centre crop */
  VIT_RESIZE_DIRECT = 1,             /* squash straight to the size, aspect not kept */
  /* HF CLIPImageProcessor / BitImageProcessor (DINOv2): shorter side to
   * round(image_height / crop_pct) (the processor's size.shortest_edge), centre crop to the size
   * with offsets (side - size) / 2 rounded down */
  VIT_RESIZE_SHORTEST_EDGE_THEN_CROP = 2,
  /* an HF processor form these fields do not express (resize to a size then centre crop, as
   * DeiTImageProcessor; a capped longest edge; no resize): vit_model_describe says it, and
   * vit_model_preprocess_image / vit_session_run_images run it */
  VIT_RESIZE_OTHER = 3,
  VIT_RESIZE_MODE_FORCE_INT = 0x7fffffff
} vit_resize_mode;
typedef enum vit_interpolation VIT_ENUM_INT {
  VIT_INTERP_BICUBIC = 0,
  VIT_INTERP_BILINEAR = 1,
  VIT_INTERP_NEAREST = 2, /* Pillow's filters (PIL.Image.Resampling), each Pillow-exact */
  VIT_INTERP_BOX = 3,
  VIT_INTERP_HAMMING = 4,
  VIT_INTERP_LANCZOS = 5,
  VIT_INTERPOLATION_FORCE_INT = 0x7fffffff
} vit_interpolation;
typedef struct vit_preprocess_info {
  vit_resize_mode resize;
  vit_interpolation interpolation;
  float crop_pct;
  float mean[3];
  float std[3];
  float rescale;
} vit_preprocess_info;
VIT_API vit_status* vit_model_get_preprocess(const vit_model* model, vit_preprocess_info* out);

/* Class label for index i, or NULL if the model has none. Valid while the model lives. */
VIT_API const char* vit_model_get_label(const vit_model* model, int index);
/* Number of load warnings (NaN/Inf weights, ...), and the i-th one. */
VIT_API int vit_model_get_warning_count(const vit_model* model);
VIT_API const char* vit_model_get_warning(const vit_model* model, int index);

/* ---- session ---- */
typedef enum vit_device VIT_ENUM_INT { VIT_DEVICE_CPU = 0, VIT_DEVICE_CUDA = 1, VIT_DEVICE_FORCE_INT = 0x7fffffff } vit_device;
typedef enum vit_precision VIT_ENUM_INT {
  VIT_PRECISION_FP32 = 0,
  VIT_PRECISION_FP16 = 1,
  VIT_PRECISION_BF16 = 2,
  /* CPU only: W8A8 GEMMs (weights int8 per output channel, activations u8 per tensor from a
   * calibration file, else per token; SmoothQuant migration), LayerNorm / softmax / GELU / the
   * residual stream in float. See vit_session_params.int8_calibration and vit_calibration_*. */
  VIT_PRECISION_INT8 = 3,
  VIT_PRECISION_FORCE_INT = 0x7fffffff
} vit_precision;
/* The precision's name ("fp32", "fp16", "bf16", "int8", as the CLI spells it), or NULL for a value
 * that is no vit_precision: the values from 0 up to the first NULL are every precision there is. */
VIT_API const char* vit_precision_name(vit_precision precision);
typedef enum vit_gemm VIT_ENUM_INT {
  VIT_GEMM_AUTO = 0,
  VIT_GEMM_CUSTOM = 1,
  VIT_GEMM_CUBLASLT = 2,
  /* CPU only: the fp32 reference engine (OpenBLAS, the oracle of the tests) instead of the fast
   * CPU engine (oneDNN: AMX / AVX512-BF16 / AVX-512 / AVX2, chosen at run time). */
  VIT_GEMM_REFERENCE = 3,
  VIT_GEMM_FORCE_INT = 0x7fffffff
} vit_gemm;

typedef struct vit_session_params {
  uint32_t struct_size;    /* sizeof(vit_session_params), set by vit_session_default_params() */
  vit_device device;       /* default CPU */
  int device_id;           /* CUDA ordinal, default 0; ignored on the CPU */
  vit_precision precision; /* default FP32; the CPU runs FP32 and BF16 (bf16 GEMMs need AMX or
                            * AVX512-BF16, else they run in fp32), CUDA all three */
  int max_batch;           /* largest batch a run may pass; default 64 */
  int num_threads;         /* CPU threads; 0 = all */
  vit_gemm gemm;           /* GEMM implementation; default AUTO. CPU: AUTO (fast engine) or
                            * REFERENCE (fp32 reference engine); CUDA: AUTO, CUSTOM, CUBLASLT */
  int use_cuda_graphs;     /* default 1 */
  int allow_tf32;          /* default 0: fp32 is true fp32 */
  void* cuda_stream;       /* cudaStream_t to run on; NULL = the session's own */
  /* -- version 2 (fields past VIT_SESSION_PARAMS_V1_SIZE) -- */
  int fusion;              /* default 1: run the fused graph; 0: unfused (same function; for
                              comparisons). Env VIT_DISABLE_FUSION=1 also turns it off. */
  /* -- version 3 -- */
  uint32_t outputs_struct_size; /* sizeof(vit_outputs) of the caller's vit.h, set by
                              vit_session_default_params(). The runs read only the vit_outputs
                              fields within it: a caller built against an older vit.h (whose
                              vit_session_params ends before this field) gets the first
                              version's size, so fields its vit_outputs lacks are never read. */
  /* -- version 4 -- */
  int max_image_size;      /* default 0: runs take the model's own size only. > 0: vit_session_run_at
                              also takes other sizes whose sides are multiples of the patch size
                              and at most this many pixels (each size's graph is built at its first
                              run and cached). */
  /* -- version 5 -- */
  /* VIT_PRECISION_INT8 only: the calibration file (vit_calibration_save; `vit-infer calibrate`).
   * NULL (default): int8_calibration.json next to the model's weights file when it exists, else
   * none; "": none; else that file. With one, activations are quantised per tensor (static) and
   * outlier channels migrated into the weights (SmoothQuant); without, per token at run time. A
   * file that cannot be read, is corrupt, or was made for another model fails the create
   * (VIT_ERR_IO / VIT_ERR_FORMAT / VIT_ERR_INVALID_ARGUMENT, naming the file). */
  const char* int8_calibration;
  /* -- version 6 -- */
  int tome;                /* default 0: off. > 0: token merging (ToMe, Bolya et al. 2023), this many
                              tokens merged per block (bipartite soft matching on the keys, size-weighted
                              averages, proportional attention; the class / distillation / register
                              tokens are never merged; each block merges at most half of its mergeable
                              tokens). Faster, and the numbers change (docs/ACCURACY.md). At most
                              (num_tokens - prefix tokens) / 2 (VIT_ERR_INVALID_ARGUMENT otherwise); runs
                              then refuse attention, attention_layers and features
                              (VIT_ERR_UNSUPPORTED: merged blocks have no per-token grid). */
} vit_session_params;
#define VIT_LOAD_PARAMS_V1_SIZE sizeof(vit_load_params)
#define VIT_SESSION_PARAMS_V1_SIZE offsetof(vit_session_params, fusion)

VIT_API vit_session_params vit_session_default_params(void);
VIT_API vit_status* vit_session_create(const vit_model* model, const vit_session_params* params,
                                       vit_session** out);
VIT_API void vit_session_free(vit_session* session);

/* Outputs of a run: caller-owned host buffers; any may be NULL to skip it. */
typedef struct vit_outputs {
  float* logits;     /* [batch, num_classes] */
  float* embeddings; /* [batch, embedding_size]: the pooled features the head reads (CLIP
                      * WithProjection: those projected, image_embeds) */
  float* attention;  /* [batch, num_heads, num_tokens, num_tokens]: last block's probabilities */
  /* [depth, batch, num_tokens, num_tokens]: every block's softmax probabilities averaged over
   * the heads (layer-major; token 0 is the class token, then the patches in row-major grid
   * order). Each row sums to 1. For attention maps / rollout. On CUDA, a run that asks for it
   * is not replayed from a CUDA graph (the per-block maps are extra work). Zero-initialise
   * vit_outputs (vit_outputs o = {0};) so that this field is NULL when unused. */
  float* attention_layers;
  /* -- version 2 (read when the session's outputs_struct_size covers it) -- */
  /* [batch, num_tokens, hidden_size]: the final tokens after the model's final norm (timm
   * forward_features; HF ViT / DINOv2 last_hidden_state): the prefix tokens (class, distillation,
   * register tokens: num_tokens minus the patch grid) then the patches in row-major grid order,
   * for dense features (segmentation, retrieval by patch). Models with fc_norm (timm's avg-pool
   * models) have no final norm here: their tokens come as the last block left them; nor HF CLIP
   * vision towers, whose post_layernorm normalises the pooled row only (as transformers). */
  float* features;
} vit_outputs;
#define VIT_OUTPUTS_V1_SIZE offsetof(vit_outputs, features)

/* images: host [batch, in_chans, image_height, image_width] fp32, normalised.
 * 1 <= batch <= max_batch. outputs must not be NULL and must request at least one output;
 * logits cannot be requested from a model without a classifier (num_classes == 0).
 * On an error the contents of the output buffers are unspecified. */
VIT_API vit_status* vit_session_run(vit_session* session, const float* images, int batch,
                                    const vit_outputs* outputs);

/* vit_session_run at another input size: images [batch, in_chans, height, width], normalised.
 * height x width is the model's own size (vit_model_info image_height x image_width: exactly
 * vit_session_run) or, when the session's max_image_size is > 0, any size whose sides are
 * multiples of the patch size and at most max_image_size. The position embeddings are resampled
 * to the size's patch grid as the model's framework does on every forward (timm dynamic_img_size:
 * bicubic with antialias from the model's table; HF interpolate_pos_encoding of DINOv2 / CLIP /
 * SigLIP / DeiT: bicubic without antialias from the checkpoint's), once per size: each size's
 * graph is built at its first run and cached (8 sizes besides the model's own; the least recently
 * used is dropped). attention, attention_layers and features have the size's token count T
 * (vit_model_get_num_tokens). Errors: VIT_ERR_INVALID_ARGUMENT naming the size and the rule it
 * breaks, plus those of vit_session_run. */
VIT_API vit_status* vit_session_run_at(vit_session* session, const float* images, int batch, int height, int width,
                                       const vit_outputs* outputs);

/* A caller-owned decoded image: interleaved RGB8, [height, width, 3] uint8, row-major, rows
 * packed (stride width * 3). Only read during the call. */
typedef struct vit_image {
  const uint8_t* rgb;
  int width, height;
} vit_image;

/* Raw images in, answers out: each image is resized, cropped and normalised exactly as the
 * model's preprocessing says (vit_model_get_preprocess; Pillow-exact resampling) to the run
 * size, and the batch of `count` images runs as vit_session_run would. Images may differ in
 * size. 1 <= count <= max_batch; the model must take 3 input channels. A CUDA session
 * preprocesses on the device where the engine supports it, else on the host. Output rules
 * and errors as vit_session_run, plus VIT_ERR_INVALID_ARGUMENT naming the image for a NULL
 * or 0-sized one. */
VIT_API vit_status* vit_session_run_images(vit_session* session, const vit_image* images, int count,
                                           const vit_outputs* outputs);
/* Decodes an encoded image held in memory (PNG or JPEG, detected from its leading bytes) to
 * RGB8 exactly as `vit-infer classify` decodes a file (Pillow's convert("RGB") pixel for pixel;
 * Pillow's decompression-bomb limit of 89,478,485 pixels). `name` (may be NULL) names the image
 * in error messages. On success out->rgb is a library-owned [height, width, 3] buffer: release it
 * with vit_image_free. Errors: VIT_ERR_FORMAT for empty, unrecognised, corrupt or truncated data,
 * VIT_ERR_UNSUPPORTED for a recognised format that is not decoded (GIF, BMP, WebP, TIFF),
 * VIT_ERR_INVALID_ARGUMENT for a 0-pixel or oversized image or a NULL argument. */
VIT_API vit_status* vit_image_decode(const void* data, size_t size, const char* name, vit_image* out);
/* Decodes an encoded image (as vit_image_decode) the way this model's framework reads an image
 * file: timm, open_clip and JAX models take Pillow's convert("RGB") (transparency dropped); a model
 * whose HF preprocessor_config has do_convert_rgb (CLIP, SigLIP, DINOv2, AIMv2 processors) gets
 * transparency (a PNG alpha channel or tRNS) composited onto white as transformers'
 * convert_to_rgb does (Pillow's alpha_composite, bit for bit). The pixels vit_session_run_images
 * should get; release with vit_image_free. Errors as vit_image_decode. */
VIT_API vit_status* vit_model_decode_image(const vit_model* model, const void* data, size_t size, const char* name,
                                           vit_image* out);
/* Prepares one RGB8 image as the model's preprocessing says (resize, crop, rescale, normalise:
 * what vit_session_run_images does on the host): out is caller-owned [3, image_height,
 * image_width] fp32 (vit_model_info's size). */
VIT_API vit_status* vit_model_preprocess_image(const vit_model* model, const vit_image* image, float* out);
/* Frees the pixels of an image vit_image_decode filled and zeroes it; NULL or zeroed: no-op. */
VIT_API void vit_image_free(vit_image* image);

/* ---- int8 calibration ----
 * Collects, over a set of images, the per-channel range of every int8 GEMM's input (the fp32
 * forward), for VIT_PRECISION_INT8 sessions: add images (a few dozen representative ones), then
 * save; a session finds the file next to the model or takes it by path
 * (vit_session_params.int8_calibration). The file is JSON and records the model's fingerprint. */
typedef struct vit_calibration vit_calibration;
/* num_threads: CPU threads, 0 = all. */
VIT_API vit_status* vit_calibration_create(const vit_model* model, int num_threads, vit_calibration** out);
VIT_API void vit_calibration_free(vit_calibration* cal);
/* images [batch, in_chans, image_height, image_width] fp32, normalised (as vit_session_run). */
VIT_API vit_status* vit_calibration_add(vit_calibration* cal, const float* images, int batch);
/* Raw RGB8 images, preprocessed as vit_session_run_images does. */
VIT_API vit_status* vit_calibration_add_images(vit_calibration* cal, const vit_image* images, int count);
/* Images added so far; -1 for NULL. */
VIT_API int64_t vit_calibration_get_image_count(const vit_calibration* cal);
/* Writes the file (replacing one there); path NULL: int8_calibration.json next to the model's
 * weights file. VIT_ERR_INVALID_ARGUMENT when no image was added, VIT_ERR_IO when unwritable. */
VIT_API vit_status* vit_calibration_save(const vit_calibration* cal, const char* path);

/* Requests cancellation. The request stays pending until a run consumes it:
 *  - a run in progress stops at its next layer boundary and returns VIT_ERR_CANCELLED
 *    (if it finishes its work before noticing, it returns normally and the request is
 *    still consumed);
 *  - with no run in progress, the next run to start returns VIT_ERR_CANCELLED at once.
 * Every run clears the request as it returns, so exactly one run is affected and a
 * cancel issued just before a run starts is never lost. NULL session: no-op. */
VIT_API void vit_session_cancel(vit_session* session);

#ifdef __cplusplus
}
#endif

#endif /* VIT_VIT_H_ */
