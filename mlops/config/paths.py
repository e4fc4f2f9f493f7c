"""Where every pipeline artifact lives. dvc.yaml names the same paths (tests/test_cli.py checks)."""

from pathlib import Path

ROOT = Path.cwd()

PARAMS = Path("params.yaml")
DATA_DIR = Path("data")

VALIDATION_REPORT = Path("reports/validation.json")

PREPARED_DIR = Path("artifacts/prepared")
TRAIN_SPLIT = PREPARED_DIR / "train.parquet"
VAL_SPLIT = PREPARED_DIR / "val.parquet"
TEST_SPLIT = PREPARED_DIR / "test.parquet"
PREPROCESSING = PREPARED_DIR / "preprocessing.json"  # vocabularies, fill values, scaler: fitted on train

MODEL_DIR = Path("artifacts/model")
MODEL_FILE = MODEL_DIR / "model.pt"  # TorchScript: raw features in, logits out (scaling baked in)
MODEL_META = MODEL_DIR / "meta.json"  # features, classes, seed, MLflow run
HISTORY = MODEL_DIR / "history.csv"  # per-epoch training curves
SEEDS_DIR = Path("artifacts/seeds")  # report.seeds extra models of other seeds (model/seeds.py), seeds.json
BASELINES_DIR = Path("artifacts/baselines")  # the baselines' test predictions (mlops/report/baselines.py)

EVAL_DIR = Path("eval")
METRICS = EVAL_DIR / "metrics.json"
PLOTS_DIR = EVAL_DIR / "plots"
CONFUSION = PLOTS_DIR / "confusion.csv"
ROC = PLOTS_DIR / "roc.csv"
PR_CURVE = PLOTS_DIR / "pr.csv"
TRAINING_CURVES = PLOTS_DIR / "training.csv"
PREDICTIONS = EVAL_DIR / "predictions.csv"  # per test row, for paired intervals
CALIBRATION = PLOTS_DIR / "calibration.csv"
SLICES = PLOTS_DIR / "slices.csv"
ATTRIBUTIONS = PLOTS_DIR / "attributions.csv"
RESIDUALS = PLOTS_DIR / "residuals.csv"  # regression: predicted vs actual (a sample of rows)
