"""`classify.age_gender`: age and gender of each face, from one of the catalog's age/gender nets.

Models (`model:`): the Intel OMZ age-gender-recognition-retail-0013 (Apache-2.0, the default),
vigil's own `vigil-age-gender` (trained by `vigil train` on UTKFace; models/weights/),
face-api.js AgeGenderNet (`faceapi-age-gender`), SSR-Net (`ssrnet`: an age and a gender net), or
`intel+faceapi` (both on one crop: gender probabilities averaged, face-api.js's age). Each model's
crop comes from the catalog, chosen by `vigil eval attributes` (README, "Face attributes"). The
decoders below turn each model's raw outputs into (age in years, [P(female), P(male)]).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from models.classifiers import Classifier
from pipeline.stage import register
from stages.attribute_smoothing import Key
from stages.classify import FaceClassifierStage, FaceClassifyOptions, default_crop, load_classifier

INTEL_AGE_GENDER = "age-gender-recognition-retail-0013"
VIGIL_AGE_GENDER = "vigil-age-gender"  # trained here by `vigil train` (models/weights/)
FACEAPI_AGE_GENDER = "faceapi-age-gender"
ENSEMBLE = "intel+faceapi"  # gender: mean of both nets' probabilities; age: face-api.js's
SSRNET_PAIR = ("ssrnet-age-imdb", "ssrnet-gender-imdb")
AGE_RANGE = (0.0, 100.0)  # years; regressions can leave it on odd crops


def intel_age_gender(age_conv3: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """age-gender-recognition-retail-0013 outputs -> (age in years (N,), [P(female), P(male)] (N, 2))."""
    return np.asarray(age_conv3, np.float64).reshape(-1) * 100.0, np.asarray(prob, np.float64).reshape(-1, 2)


def ssrnet_age_gender(age: np.ndarray, gender: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SSR-Net outputs (age in years, gender regression: < 0.5 female) -> (age (N,), [P(female), P(male)])."""
    male = np.clip(np.asarray(gender, np.float64).reshape(-1), 0.0, 1.0)
    return np.asarray(age, np.float64).reshape(-1), np.stack([1.0 - male, male], axis=1)


def vigil_age_gender(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """`vigil train` age_gender outputs (age in years (N, 1), softmax [female, male] (N, 2)), told
    apart by width (runtimes name and order them differently) -> (age clipped to `AGE_RANGE`, probs)."""
    by_width = {v.shape[1]: v for v in outputs.values()}
    return np.clip(by_width[1].reshape(-1).astype(np.float64), *AGE_RANGE), by_width[2].astype(np.float64)


def faceapi_age_gender(age: np.ndarray, gender: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """face-api.js AgeGenderNet outputs (age in years, unbounded; softmax [male, female]) ->
    (age clipped to `AGE_RANGE` (N,), [P(female), P(male)] (N, 2))."""
    probs = np.asarray(gender, np.float64).reshape(-1, 2)
    return np.clip(np.asarray(age, np.float64).reshape(-1), *AGE_RANGE), probs[:, ::-1]


class AgeGenderOptions(FaceClassifyOptions):
    """Options of `classify.age_gender`."""

    model: str = Field(
        "auto",
        description="age-gender-recognition-retail-0013 (Intel, OpenVINO), faceapi-age-gender "
        "(face-api.js AgeGenderNet TFLite, MIT weights; training data: research use only), or ssrnet "
        "(ssrnet-age-imdb + ssrnet-gender-imdb TFLite; LiteRT or OpenVINO; IMDB-WIKI: research use only), "
        "or intel+faceapi (both on the same crop: their gender probabilities averaged, face-api.js's age; "
        "carries face-api.js's training-data terms), or vigil-age-gender (ours, trained by `vigil train` on "
        "UTKFace: non-commercial data; better age, worse gender than Intel's); auto: the Intel model, or "
        "ssrnet when backend is tensorflow",
    )

    @field_validator("model")
    @classmethod
    def _known(cls, value: str) -> str:
        name = value.strip().lower()
        if name in ("ssrnet", "ssrnet-imdb", *SSRNET_PAIR):
            return "ssrnet"
        if name in ("faceapi", FACEAPI_AGE_GENDER):
            return FACEAPI_AGE_GENDER
        if name in ("vigil", VIGIL_AGE_GENDER):
            return VIGIL_AGE_GENDER
        if name not in ("auto", INTEL_AGE_GENDER, ENSEMBLE):
            raise ValueError(
                f"use auto, {VIGIL_AGE_GENDER}, {INTEL_AGE_GENDER}, {FACEAPI_AGE_GENDER}, ssrnet or {ENSEMBLE}"
            )
        return name


@register("classify.age_gender")
class AgeGenderClassifier(FaceClassifierStage[AgeGenderOptions]):
    """Age and gender of each face: `age` (years), `gender` (female|male), `gender_score`."""

    columns = ("age", "gender", "gender_score")
    GENDERS: ClassVar[tuple[str, str]] = ("female", "male")

    def load(self) -> tuple[list[Classifier], tuple[float, bool]]:
        o = self.options
        name = o.model
        if name == "auto":
            name = "ssrnet" if o.backend == "tensorflow" else INTEL_AGE_GENDER
        self.family = name
        names = {"ssrnet": SSRNET_PAIR, ENSEMBLE: (INTEL_AGE_GENDER, FACEAPI_AGE_GENDER)}.get(name, (name,))
        models = [load_classifier(n, o.backend, o.device, self.context.threads, o.precision) for n in names]
        return models, default_crop(models[0])

    def infer(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.family == "ssrnet":
            age = next(iter(self.models[0].classify_outputs(crops).values()))
            gender = next(iter(self.models[1].classify_outputs(crops).values()))
            return ssrnet_age_gender(age, gender)
        if self.family == FACEAPI_AGE_GENDER:
            return self._faceapi(self.models[0], crops)
        if self.family == VIGIL_AGE_GENDER:
            return vigil_age_gender(self.models[0].classify_outputs(crops))
        out = self.models[0].classify_outputs(crops)
        intel = intel_age_gender(out["age_conv3"], out["prob"])
        if self.family == ENSEMBLE:
            age, probs = self._faceapi(self.models[1], crops)
            return age, (intel[1] + probs) / 2
        return intel

    @staticmethod
    def _faceapi(model: Classifier, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        out = model.classify_outputs(crops)
        age_out, gender_out = model.output_names
        return faceapi_age_gender(out[age_out], out[gender_out])

    def attributes(
        self, raw: tuple[np.ndarray, np.ndarray], k: int, key: Key | None, now: int
    ) -> dict[str, Any]:
        age = float(raw[0][k])
        label, probs = self.top_class(key, "gender", raw[1][k], now)
        if key is not None and self.smoother is not None:
            age = self.smoother.value(key, "age", age, now)
        return {
            "age": round(age, 1),
            "gender": self.GENDERS[label],
            "gender_score": round(float(probs[label]), 4),
        }
