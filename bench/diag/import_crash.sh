#!/usr/bin/env bash
# Does importing torch after powerret crash? Which shared libraries does the extension pull in?
#   bench/diag/import_crash.sh     (after bench/run_gpu.sh installed powerret)
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site
so=$(find "$(python3 -c 'import sysconfig; print(sysconfig.get_path("platlib"))')/powerret" -name '_core*.so' | head -1)
echo "extension: $so"; ldd "$so"
echo "compiler: $(c++ --version | head -1); LDFLAGS='${LDFLAGS:-}' CXXFLAGS='${CXXFLAGS:-}'"
grep -h -A3 "_core.*\.so:" /tmp/powerret-build/build.ninja 2>/dev/null | grep -E "LINK_FLAGS|LINK_LIBRARIES" | cut -c1-400
echo "== powerret then torch"; python3 -X faulthandler -c "import powerret; import torch; print('ok')" 2>&1 | tail -3
echo "== torch then powerret"; python3 -c "import torch; import powerret; print('ok')" 2>&1 | tail -3
echo "== numpy, powerret, then torch"; python3 -c "import numpy, powerret; import torch; print('ok')" 2>&1 | tail -3
echo "== backtrace"
timeout 120 cuda-gdb -batch -ex run -ex "bt 20" -ex "info sharedlibrary" --args python3 -c "import powerret; import torch" 2>&1 \
  | grep -E "SIGSEGV|^#|libstdc|libgcc|powerret|torch_cpu|From" | head -60
