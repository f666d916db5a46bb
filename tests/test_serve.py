"""The service, its preprocessing and image `predict`, on pictures made here."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from digit_keras.cli import main
from digit_keras.errors import UserError
from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.serving.app import MAX_BATCH, create_app, load_served_model
from digit_keras.serving.doubt import SURE_PROBABILITY, is_sure, top_labels
from digit_keras.serving.pictures import predict_pictures
from digit_keras.serving.preprocess import BadImage, Limits, picture_to_digit, pixels_to_digit


def drawn_seven(
    size: tuple[int, int] = (200, 200),
    box: tuple[int, int, int, int] = (50, 40, 150, 160),
    ink: tuple = (0, 0, 0),
    paper: tuple = (255, 255, 255),
    mode: str = "RGB",
    width: int = 14,
) -> Image.Image:
    """A '7' of two strokes inside `box` (left, top, right, bottom)."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    draw.line([(left, top), (right, top), (left + (right - left) // 3, bottom)], ink, width)
    return image


def drawn_letter(letter: str) -> Image.Image:
    """A letter in Pillow's own font (no font files needed), black on white."""
    image = Image.new("L", (200, 200), 255)
    font = ImageFont.load_default(size=150)
    ImageDraw.Draw(image).text((100, 100), letter, 0, font, anchor="mm")
    return image


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def bomb_png(side: int = 60_000) -> bytes:
    """A small PNG whose header claims side x side pixels: Pillow refuses to open it at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    pixels = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _ink_box(digit: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(digit > 0)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_a_drawing_becomes_an_mnist_style_digit():
    digit = picture_to_digit(png(drawn_seven()))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() == 255 and digit[0].max() == 0 and digit[:, 0].max() == 0  # ink on black
    assert max(_ink_box(digit)) in (20, 21)  # fitted in 20x20 (resampling may bleed a pixel)
    row, col = ndimage.center_of_mass(digit)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1


@pytest.mark.parametrize(
    "picture",
    [
        drawn_seven(ink=(255, 255, 255), paper=(0, 0, 0)),  # already light on dark
        drawn_seven(ink=(20, 40, 200), paper=(250, 230, 120)),  # blue ink on yellow
        drawn_seven(size=(600, 400), box=(420, 250, 520, 370)),  # small, in a far corner
        drawn_seven(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA"),  # transparent canvas
    ],
    ids=["inverted", "colours", "margins", "transparent"],
)
def test_colours_margins_and_transparency_give_the_same_digit(picture):
    reference = picture_to_digit(png(drawn_seven())).astype(float)
    digit = picture_to_digit(png(picture)).astype(float)
    assert np.abs(digit - reference).mean() < 12  # of 255: the same shape, same place


def test_photo_like_noise_and_a_grey_background_are_removed():
    rng = np.random.default_rng(0)
    clean = np.asarray(drawn_seven().convert("L"), dtype=float)
    photo = 0.6 * clean + 60 + rng.normal(0, 12, clean.shape)  # grey paper, dark-grey ink
    noisy = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    digit = picture_to_digit(png(noisy, "JPEG")).astype(float)
    reference = picture_to_digit(png(drawn_seven())).astype(float)
    assert np.abs(digit - reference).mean() < 20


def test_bad_pictures_are_named():
    limits = Limits(max_bytes=10_000, max_pixels=300 * 300)
    cases = {
        b"": "empty",
        b"not a picture at all": "not an image",
        png(drawn_seven())[:400]: "damaged",
        png(drawn_seven(size=(400, 400))): "limit is 90,000 pixels",
        png(Image.new("L", (50, 50), 255)): "blank",
        bomb_png(): "header claims far more; the limit is 90,000 pixels",
    }
    for data, message in cases.items():
        with pytest.raises(BadImage, match=message):
            picture_to_digit(data, limits)
    with pytest.raises(BadImage, match="limit is 100"):
        picture_to_digit(png(drawn_seven()), Limits(max_bytes=100))


def test_pixels_are_taken_as_they_are_and_checked():
    flat = np.arange(784) % 256
    np.testing.assert_array_equal(pixels_to_digit(flat.tolist()), flat.reshape(28, 28))
    np.testing.assert_array_equal(
        pixels_to_digit(flat.reshape(28, 28).tolist()), flat.reshape(28, 28)
    )
    for pixels, message in [
        ([0] * 783, "28x28 or 784"),
        ([[0] * 28] * 27, "28x28 or 784"),
        ([300] * 784, "0-255"),
        ([float("nan")] * 784, "finite"),
        (["a"] * 784, "numbers"),
    ]:
        with pytest.raises(BadImage, match=message):
            pixels_to_digit(pixels)


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory) -> Path:
    """A tiny model trained on the synthetic bars, exported to ONNX."""
    from tests.conftest import write_kaggle_data

    root = tmp_path_factory.mktemp("serve")
    data = write_kaggle_data(root / "data")
    run = root / "run"
    fit = ["fit", "--data", str(data), "--epochs", "1", "--batch-size", "32", "--out", str(run)]
    assert main([*fit, "--set", "model.width=4"]) == 0
    assert main(["export", "--model", str(run), "--format", "onnx", "--data", str(data)]) == 0
    return run


@pytest.fixture(scope="module")
def client(onnx_run) -> TestClient:
    return TestClient(create_app(load_served_model(onnx_run), Limits(max_bytes=200_000)))


def _upload(data: bytes, name: str = "digit.png") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def test_health_model_and_page(client, onnx_run):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    metrics = json.loads((onnx_run / "metrics.json").read_text())
    assert info["arch"] == "basic" and info["holdout_accuracy"] == metrics["holdout_accuracy"]
    assert info["models"] == 1 and info["name"] == onnx_run.name
    assert info["commit"] == metrics["commit"]
    # No path of this server, nor of the machine that trained the model (its command has them).
    assert not any("/" in str(value) for key, value in info.items() if key != "input")
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_the_bundled_model_is_sure_of_a_clear_digit_and_not_of_a_letter():
    bundled = TestClient(create_app(load_served_model(BUNDLED_MODEL_DIR)))
    seven = bundled.post("/predict", files=_upload(png(drawn_seven()))).json()
    assert seven["label"] == 7 and seven["sure"] is True
    letter = bundled.post("/predict", files=_upload(png(drawn_letter("M")))).json()
    assert letter["sure"] is False and letter["confidence"] < SURE_PROBABILITY


def test_doubt_is_the_top_probability_under_the_threshold():
    assert is_sure(np.array([0.0] * 9 + [SURE_PROBABILITY]))
    assert not is_sure(np.array([0.0] * 8 + [0.11, 0.89]))
    assert top_labels(np.array([0.05, 0.0, 0.6, 0.0, 0.3, 0, 0, 0, 0.05, 0])) == [2, 4, 0]


def test_no_model_yet_is_not_ready():
    assert TestClient(create_app(None)).get("/health").status_code == 503


def test_predict_answers_label_probabilities_and_the_input(client, onnx_run):
    answer = client.post("/predict", files=_upload(png(drawn_seven()))).json()
    probabilities = np.array(answer["probabilities"])
    assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-4
    assert answer["label"] == probabilities.argmax()
    assert answer["confidence"] == pytest.approx(probabilities.max())
    assert (
        answer["top"] == list(np.argsort(-probabilities)[:3])
        and answer["top"][0] == answer["label"]
    )
    assert answer["sure"] == (answer["confidence"] >= SURE_PROBABILITY)
    np.testing.assert_array_equal(answer["input"], picture_to_digit(png(drawn_seven())))


def test_pixels_batch_and_the_seed_route_agree(client):
    seven = png(drawn_seven())
    single = client.post("/predict", files=_upload(seven)).json()
    pixels = client.post("/predict/pixels", json={"pixels": single["input"]}).json()
    assert pixels["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)
    flat = np.ravel(single["input"]).tolist()
    assert client.post("/predict/pixels", json={"pixels": flat}).json()["label"] == single["label"]

    other = png(drawn_seven(box=(30, 30, 90, 170), width=8))
    files = [("files", ("a.png", seven, "image/png")), ("files", ("b.png", other, "image/png"))]
    batch = client.post("/predict/batch", files=files).json()["predictions"]
    one_by_one = [single, client.post("/predict", files=_upload(other)).json()]
    assert len(batch) == 2
    for batched, alone in zip(batch, one_by_one, strict=True):  # in order, same answers
        assert batched["input"] == alone["input"]
        assert batched["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-6)

    seed = client.post("/digit_recognizer/predict", files=_upload(seven)).json()
    assert seed == {"class": single["label"], "probability": pytest.approx(single["confidence"])}


def test_serving_matches_image_predict(client, onnx_run, tmp_path):
    pictures = [drawn_seven(), drawn_seven(box=(30, 30, 90, 170)), drawn_seven(width=30)]
    for index, picture in enumerate(pictures):
        picture.save(tmp_path / f"{index}.png")
    answers = predict_pictures(str(onnx_run / "model.onnx"), [str(tmp_path)])
    for answer in answers:
        served = client.post("/predict", files=_upload(answer.path.read_bytes())).json()
        assert (answer.label, answer.confidence) == (
            served["label"],
            pytest.approx(served["confidence"], abs=1e-6),
        )


def test_bad_requests_get_4xx_with_a_reason_and_the_server_keeps_serving(client):
    big = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    cases = [
        (_upload(b""), 400, "empty"),
        (_upload(b"%PDF-1.4 not a picture"), 400, "not an image"),
        (_upload(png(drawn_seven())[:300]), 400, "damaged"),
        (_upload(png(Image.fromarray(big))), 413, "limit"),
        (_upload(png(Image.new("L", (5000, 5000), 255))), 400, "pixels in all"),
        (_upload(bomb_png()), 400, "pixels in all"),  # Pillow's own bomb check fires first
    ]
    for files, status, reason in cases:
        response = client.post("/predict", files=files)
        assert response.status_code == status and reason in response.json()["detail"]
    for body, reason in [
        ({"pixels": [[0] * 28] * 27}, "28x28"),
        ({"pixels": [999] * 784}, "0-255"),
    ]:
        response = client.post("/predict/pixels", json=body)
        assert response.status_code == 400 and reason in response.json()["detail"]
    nan = client.post(
        "/predict/pixels",
        content='{"pixels": [' + ", ".join(["NaN"] * 784) + "]}",
        headers={"content-type": "application/json"},
    )
    assert nan.status_code in (400, 422)
    assert client.post("/predict/pixels", json={"wrong": 1}).status_code == 422
    assert client.post("/predict").status_code == 422  # no file at all
    too_many = [
        ("files", (f"{i}.png", png(drawn_seven()), "image/png")) for i in range(MAX_BATCH + 1)
    ]
    assert client.post("/predict/batch", files=too_many).status_code == 413
    assert client.get("/health").status_code == 200


def test_image_predict_command(onnx_run, tmp_path, capsys):
    drawn_seven().save(tmp_path / "seven.png")
    (tmp_path / "broken.png").write_bytes(b"nope")
    model = str(onnx_run / "model.onnx")
    assert main(["predict", "--model", model, str(tmp_path / "seven.png")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'seven.png'}: ")
    assert main(["predict", "--model", model, str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "broken.png: error: not an image" in captured.out
    assert "1 of 2 pictures could not be read" in captured.err
    # The bundled model (the default) reads the 7 and doubts an M, naming its two guesses.
    drawn_letter("M").save(tmp_path / "letter.png")
    assert main(["predict", str(tmp_path / "seven.png"), str(tmp_path / "letter.png")]) == 0
    seven, letter = capsys.readouterr().out.splitlines()
    assert seven.startswith(f"{tmp_path / 'seven.png'}: 7 (") and "not sure" not in seven
    assert re.search(r"letter.png: (\d) \(\d+\.\d%, not sure: \1 or \d\?\)$", letter)


def test_a_bundled_model_serves_and_its_manifest_names_the_training_command(
    onnx_run, tmp_path, capsys
):
    assert main(["bundle", str(onnx_run), "--out", str(tmp_path / "bundled")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'bundled'}: 1 model(s)")
    manifest = json.loads((tmp_path / "bundled" / "manifest.json").read_text())
    metrics = json.loads((onnx_run / "metrics.json").read_text())
    assert manifest["command"] == f"make bundle: {metrics['command']}"
    assert main(["bundle", str(tmp_path), "--out", str(tmp_path / "other")]) == 2
    assert "not a finished fit run" in capsys.readouterr().err
    assert manifest["holdout_accuracy"] == metrics["holdout_accuracy"]
    assert manifest["onnx_max_abs_diff"] <= 1e-4
    assert sorted(p.name for p in (tmp_path / "bundled").iterdir()) == [
        "manifest.json",
        "model.keras",
        "model.onnx",
    ]
    served = TestClient(create_app(load_served_model(tmp_path / "bundled")))
    reference = TestClient(create_app(load_served_model(onnx_run)))
    drawing = io.BytesIO()
    drawn_seven().save(drawing, format="PNG")
    answers = [
        c.post("/predict", files=_upload(drawing.getvalue())).json() for c in (served, reference)
    ]
    assert answers[0]["label"] == answers[1]["label"]
    np.testing.assert_allclose(answers[0]["probabilities"], answers[1]["probabilities"], atol=1e-5)


@pytest.mark.slow
def test_a_bundle_of_several_runs_serves_the_mean_of_their_probabilities(onnx_run, tmp_path):
    from digit_keras.model_formats import load_predictor, locate
    from digit_keras.serving.bundle import bundle
    from tests.conftest import synthetic_digits

    data = onnx_run.parent / "data"
    other = tmp_path / "seed1"
    fit = ["fit", "--data", str(data), "--epochs", "1", "--batch-size", "32", "--out", str(other)]
    assert main([*fit, "--set", "model.width=4", "--seed", "1"]) == 0
    manifest = bundle([onnx_run, other], tmp_path / "bundled")

    holdouts = [np.load(run / "holdout.npz") for run in (onnx_run, other)]
    members = [np.exp(h["logits"]) / np.exp(h["logits"]).sum(1, keepdims=True) for h in holdouts]
    mean_correct = np.mean(members, axis=0).argmax(1) == holdouts[0]["labels"]
    assert manifest["models"] == 2 and manifest["holdout_accuracy"] == mean_correct.mean()
    commands = [
        json.loads((run / "metrics.json").read_text())["command"] for run in (onnx_run, other)
    ]
    assert manifest["command"] == f"make bundle: {commands[0]}; {commands[1]}; their mean"

    images = synthetic_digits(40, seed=3)[0][..., None]
    assert main(["export", "--model", str(other), "--format", "onnx", "--data", str(data)]) == 0
    runs_probabilities = [  # float32, as the bundle computes
        load_predictor(locate(str(run / "model.onnx")))(images, 64) for run in (onnx_run, other)
    ]
    served_model = load_served_model(tmp_path / "bundled")
    assert TestClient(create_app(served_model)).get("/model").json()["models"] == 2
    served = served_model.probabilities(images[..., 0])
    np.testing.assert_allclose(served, np.mean(runs_probabilities, axis=0), atol=1e-5)

    moved = tmp_path / "split1"
    assert main([*fit[:-1], str(moved), "--set", "model.width=4", "--split-seed", "1"]) == 0
    with pytest.raises(UserError, match="holds out other rows"):
        bundle([onnx_run, moved], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_serving_a_run_without_an_export_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["serve", "--model", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"{tmp_path / 'run'}: no model.onnx; export it first: digit-keras export" in error


def test_serving_imports_neither_tensorflow_nor_keras(onnx_run):
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from digit_keras.serving.app import create_app, load_served_model\n"
        f"create_app(load_served_model(Path({str(onnx_run)!r})))\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]


def _worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes under `parent` (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads processes from /proc")
def test_serve_workers_are_processes_that_answer_and_stop_with_the_server():
    import httpx

    from tests.conftest import serving

    with serving("--workers", "2") as (server, url):
        workers = _worker_pids(server.pid)
        assert len(workers) == 2
        for _ in range(4):
            answer = httpx.post(
                f"{url}/digit_recognizer/predict", files={"file": ("7.png", png(drawn_seven()))}
            )
            assert answer.status_code == 200 and answer.json()["class"] == 7
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_serve_needs_a_worker_and_a_free_port(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be 1 or more, not 0" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        assert main(["serve", "--port", port]) == 2
    captured = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in captured.err
    assert "serving" not in captured.out
