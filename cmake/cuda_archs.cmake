# Which GPU architectures the CUDA kernels are compiled for. Included by cmake/cuda.cmake; also runs on its own
# (`cmake -DKVSERVE_NVCC=/path/to/nvcc -P cmake/cuda_archs.cmake` prints the choice; test/native/cuda-archs.test.ts
# runs it so, with stand-ins for nvcc and nvidia-smi).
#
# The list is in CMake's CUDA_ARCHITECTURES syntax: 90 = sm_90 code plus compute_90 PTX (which the driver can
# JIT-compile for newer GPUs), 90a = Hopper-only sm_90a code (wgmma, TMA), 90-real = code only, 90-virtual =
# PTX only. The first of these wins:
#   1. KVSERVE_CUDA_ARCHS, a CMake variable (cmake-js: --CDKVSERVE_CUDA_ARCHS=90a) or else the environment
#      variable (KVSERVE_CUDA_ARCHS=90a npm run build); the word `native` means the visible GPUs;
#   2. CMAKE_CUDA_ARCHITECTURES given on the command line;
#   3. the visible GPUs' compute capabilities (nvidia-smi --query-gpu=compute_cap): a build on a GPU machine
#      is for its own GPU, and compiles once per distinct GPU instead of four times;
#   4. 80;86;89;90 — Ampere (A100, A10, RTX 30), Ada (L4, L40, RTX 40), Hopper (H100, H200) — for builds
#      without a GPU, e.g. container images. Newer GPUs run the compute_90 PTX through the driver's JIT.
# The numbers are resolved here (never left as `native`) because the addon is told the exact list and
# refuses, at start-up, a GPU that the list does not cover (engines/cuda/cuda_archs.cc).

set(KVSERVE_CUDA_DEFAULT_ARCHS "80;86;89;90")

# Distinct compute capabilities of the visible GPUs as CMake arch numbers ("8.6" -> 86); empty when
# nvidia-smi is missing, fails, or sees no GPU.
function(kvserve_visible_gpu_archs out)
  set(_archs "")
  if(KVSERVE_NVIDIA_SMI)  # a stand-in, for the tests
    set(_kvs_nvidia_smi "${KVSERVE_NVIDIA_SMI}")
  else()
    find_program(_kvs_nvidia_smi nvidia-smi)
  endif()
  if(_kvs_nvidia_smi)
    execute_process(COMMAND "${_kvs_nvidia_smi}" --query-gpu=compute_cap --format=csv,noheader
                    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0)
      string(REPLACE "\n" ";" _lines "${_out}")
      foreach(_cap IN LISTS _lines)
        string(STRIP "${_cap}" _cap)
        if(_cap MATCHES "^([0-9]+)\\.([0-9])$")
          list(APPEND _archs "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
        endif()
      endforeach()
      list(REMOVE_DUPLICATES _archs)
    endif()
  endif()
  unset(_kvs_nvidia_smi CACHE)
  set(${out} "${_archs}" PARENT_SCOPE)
endfunction()

# The sm_NN codes that nvcc can compile for (empty when it cannot tell: then nothing is filtered).
function(kvserve_nvcc_archs nvcc out)
  set(_codes "")
  if(nvcc)
    execute_process(COMMAND "${nvcc}" --list-gpu-code RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_QUIET)
    if(_rc EQUAL 0)
      string(REGEX MATCHALL "sm_[0-9]+" _codes "${_out}")
    endif()
  endif()
  set(${out} "${_codes}" PARENT_SCOPE)
endfunction()

# The entries of `archs` that nvcc cannot compile for ("120" when nvcc lacks sm_120).
function(kvserve_unsupported_archs archs nvcc_codes out)
  set(_bad "")
  if(nvcc_codes)
    foreach(_a IN LISTS archs)
      string(REGEX REPLACE "^([0-9]+).*$" "sm_\\1" _code "${_a}")
      list(FIND nvcc_codes "${_code}" _at)  # (not IN_LIST: script mode runs without policies)
      if(_at EQUAL -1)
        list(APPEND _bad "${_a}")
      endif()
    endforeach()
  endif()
  set(${out} "${_bad}" PARENT_SCOPE)
endfunction()

# kvserve_cuda_archs(<nvcc> <out list> <out how it was chosen>)
function(kvserve_cuda_archs nvcc out_archs out_source)
  if(DEFINED KVSERVE_CUDA_ARCHS AND NOT KVSERVE_CUDA_ARCHS STREQUAL "")
    set(_archs "${KVSERVE_CUDA_ARCHS}")
    set(_source "KVSERVE_CUDA_ARCHS")
  elseif(NOT "$ENV{KVSERVE_CUDA_ARCHS}" STREQUAL "")
    set(_archs "$ENV{KVSERVE_CUDA_ARCHS}")
    set(_source "KVSERVE_CUDA_ARCHS from the environment")
  elseif(DEFINED CACHE{CMAKE_CUDA_ARCHITECTURES})
    set(_archs "$CACHE{CMAKE_CUDA_ARCHITECTURES}")
    set(_source "CMAKE_CUDA_ARCHITECTURES")
  endif()
  string(REPLACE "," ";" _archs "${_archs}")  # 80,90 reads like 80;90 (easier to pass through a shell)

  kvserve_nvcc_archs("${nvcc}" _codes)
  kvserve_visible_gpu_archs(_visible)
  if(DEFINED _source)
    if(_archs STREQUAL "native")
      if(NOT _visible)
        message(FATAL_ERROR "kvserve: ${_source}=native but nvidia-smi sees no GPU; give the architectures, e.g. 90")
      endif()
      set(_archs "${_visible}")
      set(_source "${_source}=native, the visible GPU")
    endif()
    foreach(_a IN LISTS _archs)
      if(NOT _a MATCHES "^[0-9]+[af]?(-real|-virtual)?$")
        message(FATAL_ERROR "kvserve: ${_source}: \"${_a}\" is not a CUDA architecture (examples: 80, 90, 90a, 120, 90-real)")
      endif()
    endforeach()
    kvserve_unsupported_archs("${_archs}" "${_codes}" _bad)
    if(_bad)
      string(REPLACE ";" ", " _known "${_codes}")
      message(FATAL_ERROR "kvserve: ${_source}: this nvcc cannot compile for ${_bad} (it knows ${_known})")
    endif()
  elseif(_visible)
    kvserve_unsupported_archs("${_visible}" "${_codes}" _bad)
    if(_bad)
      message(WARNING "kvserve: the visible GPU is sm_${_bad}, which this nvcc cannot compile for; building for "
                      "${KVSERVE_CUDA_DEFAULT_ARCHS} instead (a newer CUDA toolkit is needed for native code)")
      set(_archs "${KVSERVE_CUDA_DEFAULT_ARCHS}")
      set(_source "default: nvcc lacks the visible GPU's arch")
    else()
      set(_archs "${_visible}")
      set(_source "the visible GPU")
    endif()
  else()
    set(_archs "${KVSERVE_CUDA_DEFAULT_ARCHS}")
    set(_source "default: no GPU visible")
  endif()
  set(${out_archs} "${_archs}" PARENT_SCOPE)
  set(${out_source} "${_source}" PARENT_SCOPE)
endfunction()

# kvserve_wgmma_archs(<archs> <out list>): the list for kernels/gemm_wgmma.cu, whose wgmma and setmaxnreg exist only
# in sm_90a code: every 9.0 entry made arch-specific (90 -> 90a, 90-real -> 90a-real, 90-virtual -> 90a-virtual),
# the others kept (the file compiles to empty kernels for them, and the runner refuses that GEMM there).
function(kvserve_wgmma_archs archs out)
  set(_out "")
  foreach(_a IN LISTS archs)
    if(_a MATCHES "^90(-real|-virtual)?$")
      set(_a "90a${CMAKE_MATCH_1}")
    endif()
    list(APPEND _out "${_a}")
  endforeach()
  list(REMOVE_DUPLICATES _out)
  set(${out} "${_out}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  kvserve_cuda_archs("${KVSERVE_NVCC}" _archs _source)
  kvserve_wgmma_archs("${_archs}" _wgmma)
  message(STATUS "archs=${_archs}")
  message(STATUS "source=${_source}")
  message(STATUS "wgmma=${_wgmma}")
endif()
