# CUDA backend build, included by the root CMakeLists.txt when this file exists.
#
# Sets for the root:
#   KVSERVE_HAVE_CUDA           ON only when nvcc, cudart and cuBLASLt are all found
#   KVSERVE_CUDA_SOURCES        kernels/*.cu + engines/cuda/*.cc, to compile into the addon (with
#                               KVSERVE_WITH_CUDA defined on it); gemm_wgmma.cu as the objects of its own library
#   KVSERVE_CUDA_INCLUDE_DIRS   kernels/ and the CUDA toolkit headers
#   KVSERVE_CUDA_LIBRARIES      cudart (static) and cuBLASLt
#   KVSERVE_CUDA_DEFINITIONS    KVSERVE_CUDA_ARCHS="80,86,89,90": the archs compiled in, for the start-up check
# The archs come from cmake/cuda_archs.cmake: KVSERVE_CUDA_ARCHS, else the visible GPU, else 80;86;89;90.
# KVSERVE_CUDA=OFF (cmake option or environment variable) builds the CPU engine only, even where nvcc is.
# With nvcc but without cuBLASLt (CI), the kernels are still compiled, as an object library in ALL, so a
# build proves they compile. Without nvcc nothing here happens: the CPU build never needs CUDA.
# With KVSERVE_HAVE_CUDA also builds kvserve_kernel_tests (test/gpu/native), the kernel test program.
set(KVSERVE_HAVE_CUDA OFF)
set(KVSERVE_CUDA_SOURCES "")
set(KVSERVE_CUDA_INCLUDE_DIRS "")
set(KVSERVE_CUDA_LIBRARIES "")
set(KVSERVE_CUDA_DEFINITIONS "")

if(DEFINED ENV{KVSERVE_CUDA} AND NOT DEFINED KVSERVE_CUDA)
  set(KVSERVE_CUDA "$ENV{KVSERVE_CUDA}")
endif()
option(KVSERVE_CUDA "Build the CUDA backend when nvcc and cuBLASLt are found" ON)
if(NOT KVSERVE_CUDA)
  message(STATUS "kvserve: KVSERVE_CUDA=OFF, building without the CUDA backend")
  return()
endif()

if(NOT CMAKE_CUDA_COMPILER)
  find_program(KVSERVE_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH PATHS /usr/local/cuda/bin /usr/local/bin)
  if(KVSERVE_NVCC)
    set(CMAKE_CUDA_COMPILER "${KVSERVE_NVCC}")
  endif()
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "kvserve: nvcc not found, building without the CUDA backend")
  return()
endif()

include(${CMAKE_CURRENT_LIST_DIR}/cuda_archs.cmake)
kvserve_cuda_archs("${CMAKE_CUDA_COMPILER}" _kvs_archs _kvs_archs_source)
set(CMAKE_CUDA_ARCHITECTURES "${_kvs_archs}")
string(REPLACE ";" "," _kvs_archs_csv "${_kvs_archs}")
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
enable_language(CUDA)
find_package(CUDAToolkit)

set(_kvs_root "${CMAKE_CURRENT_LIST_DIR}/..")
file(GLOB _kvs_kernel_sources CONFIGURE_DEPENDS "${_kvs_root}/kernels/*.cu")
set(_kvs_cuda_flags $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo --expt-relaxed-constexpr>)
# kernels/gemm_wgmma.cu is compiled on its own, as an object library that every target below takes in: its wgmma
# and setmaxnreg need sm_90a code, so its arch list is the build's with every 9.0 entry made arch-specific
# (kvserve_wgmma_archs: 90 -> 90a). Without a 9.0 entry its kernels compile empty and the runner refuses it.
list(FILTER _kvs_kernel_sources EXCLUDE REGEX "/gemm_wgmma\\.cu$")
kvserve_wgmma_archs("${_kvs_archs}" _kvs_wgmma_archs)
function(kvserve_wgmma_object_library name archs)
  add_library(${name} OBJECT "${_kvs_root}/kernels/gemm_wgmma.cu")
  set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES "${archs}" POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${name} PRIVATE "${_kvs_root}/kernels")
  target_compile_options(${name} PRIVATE ${_kvs_cuda_flags})
endfunction()

if(CUDAToolkit_FOUND AND TARGET CUDA::cudart_static AND TARGET CUDA::cublasLt)
  set(KVSERVE_HAVE_CUDA ON)
  file(GLOB _kvs_backend_sources CONFIGURE_DEPENDS "${_kvs_root}/engines/cuda/*.cc")
  kvserve_wgmma_object_library(kvserve_gemm_wgmma "${_kvs_wgmma_archs}")
  list(APPEND _kvs_kernel_sources $<TARGET_OBJECTS:kvserve_gemm_wgmma>)
  set(KVSERVE_CUDA_SOURCES ${_kvs_kernel_sources} ${_kvs_backend_sources})
  set(KVSERVE_CUDA_INCLUDE_DIRS "${_kvs_root}/kernels" ${CUDAToolkit_INCLUDE_DIRS})
  set(KVSERVE_CUDA_LIBRARIES CUDA::cudart_static CUDA::cublasLt)
  set(KVSERVE_CUDA_DEFINITIONS "KVSERVE_CUDA_ARCHS=\"${_kvs_archs_csv}\"")
  message(STATUS "kvserve: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${_kvs_archs}: ${_kvs_archs_source}; "
                 "gemm_wgmma.cu: ${_kvs_wgmma_archs})")

  # The kernel test program: kernels against naive CPU references, and the cuBLASLt GEMM wrapper.
  file(GLOB _kvs_test_sources CONFIGURE_DEPENDS "${_kvs_root}/test/gpu/native/*.cu" "${_kvs_root}/test/gpu/native/*.cc")
  # engines/sampler.cc and engines/rope.cc (the CPU engine's) serve as references.
  add_executable(kvserve_kernel_tests ${_kvs_test_sources} ${_kvs_kernel_sources}
    "${_kvs_root}/engines/cuda/gemm.cc" "${_kvs_root}/engines/cuda/gemm_import.cc" "${_kvs_root}/engines/cuda/gemm_even.cc" "${_kvs_root}/engines/cuda/gemm_fp8.cc" "${_kvs_root}/engines/cuda/gemm_int8.cc" "${_kvs_root}/engines/cuda/gpu_sampler.cc"
    "${_kvs_root}/engines/sampler.cc" "${_kvs_root}/engines/rope.cc" "${_kvs_root}/engines/model_config.cc"
    "${_kvs_root}/engines/json.cc")
  target_include_directories(kvserve_kernel_tests PRIVATE "${_kvs_root}/kernels" "${_kvs_root}/engines/cuda" "${_kvs_root}/engines")
  target_link_libraries(kvserve_kernel_tests PRIVATE CUDA::cudart_static CUDA::cublasLt)
  target_compile_options(kvserve_kernel_tests PRIVATE ${_kvs_cuda_flags})
  set_target_properties(kvserve_kernel_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/Release")

  # The kernel benchmark (test/gpu/bench): GEMV and attention bandwidth against the copy ceiling.
  add_executable(kvserve_kernel_bench "${_kvs_root}/test/gpu/bench/kernel_bench.cu" ${_kvs_kernel_sources}
    "${_kvs_root}/engines/cuda/gemm.cc" "${_kvs_root}/engines/cuda/gemm_import.cc" "${_kvs_root}/engines/cuda/gemm_even.cc" "${_kvs_root}/engines/cuda/gemm_fp8.cc" "${_kvs_root}/engines/cuda/gemm_int8.cc" "${_kvs_root}/engines/model_config.cc"
    "${_kvs_root}/engines/json.cc")
  target_include_directories(kvserve_kernel_bench PRIVATE "${_kvs_root}/kernels" "${_kvs_root}/engines/cuda" "${_kvs_root}/engines")
  target_link_libraries(kvserve_kernel_bench PRIVATE CUDA::cudart_static CUDA::cublasLt)
  target_compile_options(kvserve_kernel_bench PRIVATE ${_kvs_cuda_flags})
  set_target_properties(kvserve_kernel_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/Release")
else()
  # Nothing of this build runs on a GPU, so one arch proves the kernels compile: the newest in the list,
  # which takes the most code paths (KVSERVE_CUDA_ARCHS picks another).
  set(_kvs_check_arch "")
  set(_kvs_check_num 0)
  foreach(_a IN LISTS _kvs_archs)
    string(REGEX REPLACE "^([0-9]+).*$" "\\1" _n "${_a}")
    if(_n GREATER_EQUAL _kvs_check_num)
      set(_kvs_check_num ${_n})
      set(_kvs_check_arch "${_a}")
    endif()
  endforeach()
  kvserve_wgmma_archs("${_kvs_check_arch}" _kvs_check_wgmma_arch)
  message(STATUS "kvserve: nvcc found without cuBLASLt: compiling kernels/*.cu for ${_kvs_check_arch} "
                 "(gemm_wgmma.cu: ${_kvs_check_wgmma_arch}) as a check only")
  add_library(kvserve_kernels_check OBJECT ${_kvs_kernel_sources})
  set_target_properties(kvserve_kernels_check PROPERTIES CUDA_ARCHITECTURES "${_kvs_check_arch}")
  target_include_directories(kvserve_kernels_check PRIVATE "${_kvs_root}/kernels")
  target_compile_options(kvserve_kernels_check PRIVATE ${_kvs_cuda_flags})
  kvserve_wgmma_object_library(kvserve_gemm_wgmma_check "${_kvs_check_wgmma_arch}")
endif()
