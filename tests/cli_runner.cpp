// vit-infer tests: child-process runner (see cli_runner.h). posix_spawn with stdin from
// /dev/null and stdout / stderr on two O_CLOEXEC pipes, drained by poll until both close;
// the child is reaped with wait4 for its status and rusage. Past the deadline it gets
// SIGKILL, so a hung program fails its test instead of hanging the suite. RunOptions: the
// working directory via posix_spawn_file_actions_addchdir_np (glibc >= 2.29) and an envp
// built from environ, so no shell (`cd X &&`, `env -u`) is ever involved.
#include "cli_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

extern char** environ;

namespace vit::test {

std::string Proc::describe() const {
  std::string s;
  if (timed_out) {
    s = "timed out after " + std::to_string(seconds) + " s";
  } else if (signaled) {
    s = std::string("killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")";
  } else {
    s = "exit status " + std::to_string(rc);
  }
  return s + "; stderr:\n" + err;
}

namespace {

// "NAME=value" strings: environ without the removed / replaced names, then set_env.
std::vector<std::string> child_env(const RunOptions& opt) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string name = kv.substr(0, kv.find('='));
    const bool drop = opt.set_env.count(name) != 0 ||
                      std::find(opt.unset_env.begin(), opt.unset_env.end(), name) != opt.unset_env.end();
    if (!drop) env.push_back(kv);
  }
  for (const auto& [name, value] : opt.set_env) env.push_back(name + "=" + value);
  return env;
}

}  // namespace

Proc run_program(const std::string& bin, const std::vector<std::string>& args, double timeout_s) {
  RunOptions opt;
  opt.timeout_s = timeout_s;
  return run_program(bin, args, opt);
}

Proc run_program(const std::string& bin, const std::vector<std::string>& args, const RunOptions& opt) {
  const double timeout_s = opt.timeout_s;
  using Clock = std::chrono::steady_clock;
  Proc p;
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    p.err = std::string("run_program: pipe2 failed: ") + std::strerror(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      if (fd >= 0) close(fd);
    return p;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);  // dup2 clears O_CLOEXEC on 1 and 2
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  if (!opt.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, opt.cwd.c_str());

  std::vector<std::string> argv_s;
  argv_s.push_back(bin);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = child_env(opt);
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  const auto t0 = Clock::now();
  pid_t pid = -1;
  const int se = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (se != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    p.err = "run_program: cannot spawn " + bin + (opt.cwd.empty() ? "" : " in " + opt.cwd) + ": " + std::strerror(se);
    return p;
  }

  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&p.out, &p.err};
  int open_fds = 2;
  int status = 0;
  rusage ru{};
  bool reaped = false;
  char buf[65536];
  while (!reaped) {
    const auto now = Clock::now();
    if (now >= deadline) {
      p.timed_out = true;
      kill(pid, SIGKILL);  // our own child, by id
      break;
    }
    const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    if (open_fds > 0) {
      const int r = poll(fds, 2, std::min(ms, 200));
      if (r < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n > 0) {
          sinks[i]->append(buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          close(fds[i].fd);
          fds[i].fd = -1;  // poll ignores negative fds
          --open_fds;
        }
      }
    } else {
      // Both streams closed: wait for the exit without blocking past the deadline.
      const pid_t r = wait4(pid, &status, WNOHANG, &ru);
      if (r == pid) {
        reaped = true;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  for (pollfd& f : fds)
    if (f.fd >= 0) close(f.fd);
  if (!reaped) {
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
  }
  p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  p.max_rss_kb = ru.ru_maxrss;
  if (WIFEXITED(status)) {
    p.rc = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    p.signaled = true;
    p.signal = WTERMSIG(status);
  }
  return p;
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  for (std::string dir; std::getline(ss, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) v.push_back(l);
  return v;
}

}  // namespace vit::test
