# Sourced by the bench/diag scripts that compile a standalone CUDA program (wgmma_check.sh, state_loop.sh):
# the working directory becomes the repository root, and $cutlass names the CUTLASS source tree of the
# nvidia-cutlass wheel (installed from .whl/ into /tmp/site when the GPU machine lacks it).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if compgen -G ".whl/*.whl" > /dev/null && [ ! -d /tmp/site/cutlass_library ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/nvidia_cutlass*.whl
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
cutlass=$(python3 -c "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__) + '/source')")
