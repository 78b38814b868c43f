// vit-infer: the run-size cache both engines keep (cpu/cpu_engine.cpp: a graph and its rows per
// size; gpu/cuda_engine.cpp: a lowered graph, buckets and CUDA graphs per size). One State per run
// size, made at the size's first use; the model's own size always stays, and beyond kCachedSizes
// other sizes the least recently used one is dropped (after `on_drop` has seen it: the CUDA engine
// synchronises its stream and frees the size's graphs and weight segment). Not thread-safe: the
// engines call it under their run lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>

#include "graph/graph.h"

namespace vit::graph {

template <class State>
class SizeCache {
 public:
  // Run sizes other than the model's own whose states stay cached.
  static constexpr size_t kCachedSizes = 8;

  explicit SizeCache(RunSize own) : own_(own) {}

  // The state of `size`: the cached one, or make() (a std::unique_ptr<State>) at its first use.
  // The new state is made before anything is dropped, so that a make() that throws leaves the
  // cache as it was.
  template <class Make, class OnDrop>
  State& get(RunSize size, Make&& make, OnDrop&& on_drop) {
    ++clock_;
    auto it = map_.find(size);
    if (it == map_.end()) {
      std::unique_ptr<State> made = make();
      if (map_.size() > kCachedSizes) {
        auto victim = map_.end();
        for (auto v = map_.begin(); v != map_.end(); ++v)
          if (!(v->first == own_) && (victim == map_.end() || v->second.used < victim->second.used)) victim = v;
        on_drop(*victim->second.state);
        map_.erase(victim);
      }
      it = map_.emplace(size, Entry{std::move(made), 0}).first;
    }
    it->second.used = clock_;
    return *it->second.state;
  }

  RunSize own_size() const { return own_; }
  // The model's own size's state (present once get(own_size(), ...) has run).
  State& own() { return *map_.at(own_).state; }
  const State& own() const { return *map_.at(own_).state; }
  size_t size() const { return map_.size(); }
  // f(RunSize, State&) over every cached size, in size order.
  template <class F>
  void for_each(F&& f) {
    for (auto& [s, e] : map_) f(s, *e.state);
  }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [s, e] : map_) f(s, static_cast<const State&>(*e.state));
  }

 private:
  struct Entry {
    std::unique_ptr<State> state;
    uint64_t used = 0;  // the clock at the last get()
  };
  RunSize own_;
  std::map<RunSize, Entry> map_;
  uint64_t clock_ = 0;
};

}  // namespace vit::graph
