#!/usr/bin/env bash
# The GPU checks of issues 9 and 11, for a CUDA machine that has torch but not this project's
# venv (the device tool's machines). Run from the checkout root:
#   bash tools/gpu_checks.sh <seconds> [check...]   (checks: tests e2e profile finetune model; default all)
# It expects .devdata/ beside the code (ignored by git): site.tar.xz (rasterio, fiona, shapely,
# segmentation-models-pytorch built for that machine's Python; fiona's own GDAL is replaced by
# a link to rasterio's to fit the transfer limit), arctic_chips/ (`make chips`) and
# shared/data/arctic_rts_chips/chips (the real chips the Beiluhe-size mosaic is tiled from).
# Writes JSON and a log to $OUT (default out/gpu); steps that would pass the deadline are skipped.
# Building site.tar.xz (here, for the device's Python 3.12):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d whl rasterio==1.4.4 fiona==1.10.1 \
#     shapely==2.0.7 segmentation-models-pytorch==0.6.0 affine==2.4.0 cligj==0.7.2 click-plugins==1.1.1.2
#   unzip each wheel into site/; rm -r site/fiona.libs/* site/fiona/proj_data site/fiona/gdal_data;
#   ln -s ../rasterio.libs/libgdal-*.so.* site/fiona.libs/<the libgdal name fiona's .so files NEED (readelf -d)>;
#   tar -cf - -C site . | xz -9 > .devdata/site.tar.xz   (28 MB; the checkout plus .devdata must stay under 64 MiB)
set -u
DEADLINE=$(( $(date +%s) + ${1:-500} ))
shift || true
CHECKS=" ${*:-tests e2e profile finetune model} "
OUT=${OUT:-out/gpu}
mkdir -p "$OUT" /tmp/site /tmp/pkg
[ -f .devdata/site.tar.xz ] && [ ! -d /tmp/site/rasterio ] && tar -xJf .devdata/site.tar.xz -C /tmp/site
ln -sfn "$PWD" /tmp/pkg/thaw_slump_mapper
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1 SHARED=$PWD/.devdata/shared XDG_CACHE_HOME=/tmp/tsm_cache
PY=${PY:-python3}
CKPT=model/weights/thaw_slump_deeplabv3plus.pt
RASTER=out/bench/mosaic_30916x18713.tif

step() {  # step <name> <timeout s> <command...>: runs it if the deadline allows
  local name=$1 limit=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  if (( left < 20 )); then echo "== $name: skipped, ${left}s left"; return; fi
  (( limit > left )) && limit=$left
  echo "== $name (limit ${limit}s) $(date +%T)"
  local t0=$(date +%s)
  echo "== $name" >> "$OUT/steps.log"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/steps.log" | tail -n 40
  echo "== $name: rc ${PIPESTATUS[0]}, $(( $(date +%s) - t0 )) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
step imports 60 $PY -c "import torch, rasterio, fiona, shapely, segmentation_models_pytorch as smp; \
print(torch.__version__, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported(), 'GDAL', rasterio.__gdal_version__, fiona.__gdal_version__)"
wants() { [[ "$CHECKS" == *" $1 "* ]]; }
if wants e2e || wants profile || wants model; then
  step mosaic 120 $PY -c "import sys; sys.path.insert(0, 'tools'); import bench_engine as b; from pathlib import Path; \
print(b.build_raster(b.BEILUHE, Path('.devdata/shared')))"
fi
# detection end to end on the Beiluhe-size mosaic, with detect's defaults
wants e2e && step e2e 200 $PY tools/bench_engine.py --worker e2e:auto --checkpoint $CKPT --raster $RASTER
wants tests && step tests 120 $PY -m pytest -q -p no:cacheprovider -x tests/core/test_shared_ideas.py tests/engine/test_cuda_detection.py \
  tests/engine/test_pipeline_shortcuts.py -s
wants profile && step profile 200 $PY tools/profile_detect.py $RASTER --json "$OUT/profile.json"
# the default fine-tune at the outside check's size: one batch thread (the old recipe), then the default
wants finetune && for workers in 1 auto; do
  step "finetune_$workers" 200 $PY tools/bench_finetune.py .devdata/arctic_chips --train 678 --val 78 --epochs 2 \
    $([ $workers = auto ] || echo --workers $workers) --json "$OUT/finetune_$workers.json"
done
wants model && for kind in cuda:4 cuda:32; do
  step "model_${kind/:/_}" 60 $PY tools/bench_engine.py --worker "$kind" --checkpoint $CKPT --raster $RASTER --sample 128
done
true
