// vit-infer tests: runs the shipped `vit-infer` program as a child process (posix_spawn, no
// shell) with a wall-clock limit, capturing stdout and stderr separately (both pipes drained
// with poll so a chatty child never blocks), and reports how it ended: exit status, killing
// signal, timeout, wall time and peak resident memory. RunOptions sets the child's working
// directory and adds / removes environment variables. Shared by the CLI test drivers.
#pragma once

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace vit::test {

struct Proc {
  int rc = -1;             // exit status when the child exited normally, else -1
  bool signaled = false;   // killed by a signal (a crash: SIGSEGV, SIGABRT, ...; or our timeout kill)
  int signal = 0;          // that signal
  bool timed_out = false;  // ran past the limit and was killed (SIGKILL)
  double seconds = 0.0;    // wall time from spawn to exit
  long max_rss_kb = 0;     // peak resident set size of the child (getrusage / wait4)
  std::string out, err;    // stdout, stderr
  // One line for failure messages: how it ended plus the stderr text.
  std::string describe() const;
};

// How to start the child. The environment is this process's, minus `unset_env`, with
// `set_env` added (set_env wins over unset_env for the same name).
struct RunOptions {
  std::string cwd;                            // working directory; empty: this process's
  std::map<std::string, std::string> set_env;  // NAME -> value
  std::vector<std::string> unset_env;          // NAMEs removed
  double timeout_s = 60.0;                     // wall-clock limit, then SIGKILL
};

// Runs `bin args...` (bin defaults to VIT_INFER_BIN when the including target defines it).
// bin is a path (not searched in $PATH; see find_in_path). Never throws for a child that
// fails; a spawn failure (missing program, bad cwd) gives rc -1 and the reason in err.
Proc run_program(const std::string& bin, const std::vector<std::string>& args, const RunOptions& opt);
Proc run_program(const std::string& bin, const std::vector<std::string>& args, double timeout_s = 60.0);

#ifdef VIT_INFER_BIN
// The program under test: VIT_INFER_BIN compiled in, unless the environment variable
// VIT_INFER_BIN names another copy (tools/gpu_run.sh: the carried binaries on the GPU machine,
// where the build directory of the compiled-in path does not exist).
inline std::string vit_infer_bin() {
  const char* e = std::getenv("VIT_INFER_BIN");
  return e && *e ? std::string(e) : std::string(VIT_INFER_BIN);
}
inline Proc run_cli(const std::vector<std::string>& args, double timeout_s = 60.0) {
  return run_program(vit_infer_bin(), args, timeout_s);
}
inline Proc run_cli(const std::vector<std::string>& args, const RunOptions& opt) {
  return run_program(vit_infer_bin(), args, opt);
}
#endif

// The first executable `name` in $PATH, or "" when there is none.
std::string find_in_path(const std::string& name);

// Non-empty lines of s.
std::vector<std::string> lines(const std::string& s);

}  // namespace vit::test
