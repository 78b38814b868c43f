// vit-infer: NumPy .npz archives via libzip. An .npz is a zip whose members are .npy images
// named "<key>.npy", stored (np.savez) or deflated (np.savez_compressed). Each member is read
// whole into memory (declared sizes are checked first so a decompression bomb cannot make us
// allocate unbounded memory), then parsed by parse_npy.
#include "io/npz.h"

#include <sys/stat.h>
#include <zip.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

#include "core/error.h"
#include "io/npy.h"

namespace vit {

namespace {

constexpr uint64_t kMaxMemberSize = 4ull << 30;   // 4 GiB per member
constexpr uint64_t kMaxTotalSize = 64ull << 30;   // all members together
// Deflate cannot compress better than ~1032:1; a larger declared ratio is a lie.
constexpr uint64_t kMaxDeflateRatio = 1032;

struct ZipDiscard {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileClose {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

std::string zip_code_message(int code) {
  zip_error_t err;
  zip_error_init_with_code(&err, code);
  std::string msg = zip_error_strerror(&err);
  zip_error_fini(&err);
  return msg;
}

}  // namespace

std::map<std::string, Tensor> read_npz(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    fail(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(ErrorCode::kIo, path + ": not a regular file");
  // libzip treats a 0-byte file as a new, empty archive; for reading it is simply not a zip.
  if (st.st_size == 0) fail(ErrorCode::kFormat, path + ": empty file, not a zip archive");

  int code = 0;
  std::unique_ptr<zip_t, ZipDiscard> za(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code));
  if (!za) {
    const ErrorCode ec = (code == ZIP_ER_OPEN || code == ZIP_ER_NOENT || code == ZIP_ER_READ)
                             ? ErrorCode::kIo
                             : code == ZIP_ER_MEMORY ? ErrorCode::kOutOfMemory : ErrorCode::kFormat;
    fail(ec, path + ": cannot open npz archive: " + zip_code_message(code));
  }

  std::map<std::string, Tensor> out;
  const zip_int64_t count = zip_get_num_entries(za.get(), 0);
  if (count < 0) fail(ErrorCode::kFormat, path + ": cannot list npz archive");
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < count; ++i) {
    const zip_uint64_t idx = static_cast<zip_uint64_t>(i);
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(za.get(), idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_NAME) ||
        !(zs.valid & ZIP_STAT_SIZE))
      fail(ErrorCode::kFormat, path + ": cannot stat member " + std::to_string(i) + ": " +
                                   zip_strerror(za.get()));
    const std::string member = zs.name;
    const std::string where = path + ": member '" + member + "'";
    if (!member.empty() && member.back() == '/') continue;  // a directory entry holds no array

    // Bound the allocation by what the archive can honestly hold before allocating.
    if (zs.size > kMaxMemberSize)
      fail(ErrorCode::kFormat, where + ": declared size " + std::to_string(zs.size) +
                                   " bytes exceeds the 4 GiB member limit");
    if (zs.size > kMaxTotalSize - total)
      fail(ErrorCode::kFormat, where + ": declared size " + std::to_string(zs.size) +
                                   " bytes exceeds the remaining archive limit of " +
                                   std::to_string(kMaxTotalSize - total) + " bytes");
    if ((zs.valid & ZIP_STAT_COMP_SIZE) && (zs.valid & ZIP_STAT_COMP_METHOD)) {
      if (zs.comp_method == ZIP_CM_STORE && zs.comp_size != zs.size)
        fail(ErrorCode::kFormat, where + ": stored member declares " + std::to_string(zs.size) +
                                     " bytes but occupies " + std::to_string(zs.comp_size));
      if (zs.comp_method == ZIP_CM_DEFLATE && zs.size / kMaxDeflateRatio > zs.comp_size + 64)
        fail(ErrorCode::kFormat, where + ": declared size " + std::to_string(zs.size) +
                                     " is impossible for " + std::to_string(zs.comp_size) +
                                     " deflated bytes (decompression bomb?)");
    }
    total += zs.size;

    std::string key = member;
    if (key.size() >= 4 && key.compare(key.size() - 4, 4, ".npy") == 0)
      key.resize(key.size() - 4);
    if (out.count(key))
      fail(ErrorCode::kFormat, where + ": duplicate array name '" + key + "'");

    std::unique_ptr<zip_file_t, ZipFileClose> zf(zip_fopen_index(za.get(), idx, 0));
    if (!zf)
      fail(ErrorCode::kFormat, where + ": cannot open member: " + zip_strerror(za.get()));
    std::vector<uint8_t> buf;
    try {
      buf.resize(static_cast<size_t>(zs.size));
    } catch (const std::bad_alloc&) {
      fail(ErrorCode::kOutOfMemory, where + ": cannot allocate " + std::to_string(zs.size) +
                                        " bytes");
    }
    uint64_t got = 0;
    while (got < zs.size) {
      const zip_int64_t r = zip_fread(zf.get(), buf.data() + got, zs.size - got);
      if (r < 0)
        fail(ErrorCode::kFormat, where + ": read failed: " + zip_file_strerror(zf.get()));
      if (r == 0) break;
      got += static_cast<uint64_t>(r);
    }
    if (got != zs.size)
      fail(ErrorCode::kFormat, where + ": read " + std::to_string(got) +
                                   " bytes but the archive declares " + std::to_string(zs.size));
    // Reading past the declared end makes libzip verify the CRC, and catches a member
    // that inflates to more than it declares.
    uint8_t probe;
    const zip_int64_t extra = zip_fread(zf.get(), &probe, 1);
    if (extra < 0)
      fail(ErrorCode::kFormat, where + ": read failed: " + zip_file_strerror(zf.get()));
    if (extra > 0)
      fail(ErrorCode::kFormat, where + ": member holds more than its declared " +
                                   std::to_string(zs.size) + " bytes");
    const int close_err = zip_fclose(zf.release());
    if (close_err != 0)
      fail(ErrorCode::kFormat, where + ": " + zip_code_message(close_err));

    out.emplace(std::move(key), parse_npy(buf.data(), buf.size(), where));
  }
  return out;
}

void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays) {
  if (arrays.empty()) {
    // libzip does not write an archive with no members; np.savez() writes a bare
    // end-of-central-directory record, so do the same.
    static const uint8_t kEmptyZip[22] = {'P', 'K', 5, 6};
    FILE* fp = std::fopen(path.c_str(), "wb");
    if (fp == nullptr) fail(ErrorCode::kIo, path + ": cannot create: " + std::strerror(errno));
    const bool ok = std::fwrite(kEmptyZip, 1, sizeof kEmptyZip, fp) == sizeof kEmptyZip;
    if (std::fclose(fp) != 0 || !ok) fail(ErrorCode::kIo, path + ": write failed");
    return;
  }
  // Encode first: zip_source_buffer borrows the bytes until zip_close.
  std::vector<std::vector<uint8_t>> images;
  images.reserve(arrays.size());
  for (const auto& [name, t] : arrays) {
    if (static_cast<int64_t>(t.data.size()) != t.numel() || t.shape.empty())
      fail(ErrorCode::kInvalidArgument, "write_npz " + path + ": array '" + name + "' has " +
                                            std::to_string(t.data.size()) + " values for shape " +
                                            shape_str(t.shape));
    images.push_back(encode_npy(t.ptr(), t.shape));
  }

  int code = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (za == nullptr) fail(ErrorCode::kIo, path + ": cannot create: " + zip_code_message(code));
  size_t k = 0;
  for (const auto& kv : arrays) {
    const std::vector<uint8_t>& img = images[k++];
    const std::string member = kv.first + ".npy";
    zip_source_t* src = zip_source_buffer(za, img.data(), img.size(), 0);
    zip_int64_t idx = -1;
    if (src != nullptr) {
      idx = zip_file_add(za, member.c_str(), src, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
      if (idx < 0) zip_source_free(src);
    }
    if (idx < 0 || zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0) != 0) {
      const std::string msg = zip_strerror(za);
      zip_discard(za);
      fail(ErrorCode::kIo, path + ": cannot add member '" + member + "': " + msg);
    }
  }
  if (zip_close(za) != 0) {
    const std::string msg = zip_strerror(za);
    zip_discard(za);
    fail(ErrorCode::kIo, path + ": cannot write npz archive: " + msg);
  }
}

}  // namespace vit
