# The fast CPU engine against the reference ops (test_fast_cpu.cpp). The default entries run on
# the best ISA of this CPU; the forced ones lower oneDNN's ceiling (once per process, hence a
# process per ISA) so that the AVX512-BF16 and AVX2 paths run on an AMX machine too. On a CPU
# without the forced ISA the process fails loudly (VIT_CPU_ISA asks for more than it has), so
# those entries are added only where /proc/cpuinfo lists it.
vit_add_test(test_fast_cpu test_fast_cpu.cpp model_fixture.cpp LIBS vit_cpu)
# The int8 run (src/cpu/int8.h): kernels, the int8 GEMM, random models, the calibration file.
vit_add_test(test_int8 test_int8.cpp model_fixture.cpp LIBS vit_cpu)
set(_vit_cpuinfo "")
if(EXISTS /proc/cpuinfo)
  file(READ /proc/cpuinfo _vit_cpuinfo LIMIT 8192)
endif()
foreach(isa avx512_bf16 avx2)
  if(_vit_cpuinfo MATCHES " ${isa}( |\n)")
    add_test(NAME fast_cpu_forced_${isa}
             COMMAND test_fast_cpu --gtest_filter=FastCpuLinear.*:FastCpuEngine.Fp32*:FastCpuEngine.Bf16*)
    set_tests_properties(fast_cpu_forced_${isa} PROPERTIES ENVIRONMENT VIT_CPU_ISA=${isa} TIMEOUT 600)
  endif()
endforeach()
