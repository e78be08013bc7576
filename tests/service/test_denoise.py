"""POST /denoise against the committed denoiser: bit depths, alpha, sigma, tiling, JPEG, bad inputs."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.conftest import MODELS
from tests.service.conftest import ready_client
from training.data.natural import test_images


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def camera():
    clean = (test_images()["camera"][100:292, 120:340] * 255).round()  # (192, 220), 0..255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255)
    return clean, noisy


def encode(a: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    if fmt == "TIFF":
        tifffile.imwrite(buf, a)
    else:
        Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def post(client, data: bytes, query: str = "", ctype: str = "image/png"):
    return client.post(f"/denoise{query}", content=data, headers={"content-type": ctype})


def test_8_bit_round_trip_removes_noise(client, camera) -> None:
    clean, noisy = camera
    r = post(client, encode(noisy.astype(np.uint8)))
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(r.content))
    assert out.mode == "L" and out.size == (220, 192)
    assert psnr(np.asarray(out), clean, 255) > psnr(noisy.astype(np.uint8), clean, 255) + 5
    assert abs(float(r.headers["x-sigma-estimated"]) - 25) < 4  # sigma estimated when absent


def test_16_bit_round_trip_keeps_depth_and_range(client, camera) -> None:
    _, noisy = camera
    sixteen = (noisy.astype(np.uint8).astype(np.uint16)) * 257
    r = post(client, encode(sixteen))
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.dtype == np.uint16 and out.max() > 255 * 100  # not truncated to 8 bits
    eight = np.asarray(Image.open(io.BytesIO(post(client, encode(noisy.astype(np.uint8))).content)))
    assert np.abs(out / 257 - eight).mean() < 1.0  # the same picture at another depth, the same result


def test_float_tiff_round_trip_keeps_dtype_and_range(client, camera) -> None:
    _, noisy = camera
    unit = (noisy / 255).astype(np.float32)
    out = tifffile.imread(io.BytesIO(post(client, encode(unit, "TIFF"), "?output=tiff", "image/tiff").content))
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    wide = (noisy * 4 + 100).astype(np.float32)  # outside [0, 1]: mapped from [min, max] and back
    out = tifffile.imread(io.BytesIO(post(client, encode(wide, "TIFF"), "?output=tiff", "image/tiff").content))
    assert out.dtype == np.float32 and out.min() >= wide.min() - 1e-3 and out.max() <= wide.max() + 1e-3
    r = post(client, encode(unit, "TIFF"), ctype="image/tiff")  # png cannot hold float32
    assert r.status_code == 422 and r.json()["error"]["code"] == "png_unsupported"


def test_compressed_tiffs_are_read_as_written(client, camera) -> None:
    """LZW (Fiji's and Pillow's TIFF compression) and deflate TIFFs denoise like the uncompressed file."""
    _, noisy = camera
    plain = post(client, encode(noisy.astype(np.uint8), "TIFF"), "?output=png", "image/tiff")
    assert plain.status_code == 200, plain.text
    for compression in ("tiff_lzw", "tiff_adobe_deflate"):
        buf = io.BytesIO()
        Image.fromarray(noisy.astype(np.uint8)).save(buf, format="TIFF", compression=compression)
        r = post(client, buf.getvalue(), "?output=png", "image/tiff")
        assert r.status_code == 200 and r.content == plain.content, (compression, r.text[:200])
    pages = io.BytesIO()
    tifffile.imwrite(pages, np.stack([noisy, 255 - noisy]).astype(np.uint8))  # two pages: the first is denoised
    r = post(client, pages.getvalue(), "?output=png", "image/tiff")
    assert r.content == plain.content and "holds 2 images" in r.headers["x-warning"]


def test_rgba_keeps_alpha_and_colour(client) -> None:
    rgb = (test_images(gray=False)["astronaut"][:96, :128] * 255).astype(np.uint8)
    alpha = np.random.default_rng(1).integers(0, 256, (96, 128), dtype=np.uint8)
    r = post(client, encode(np.dstack([rgb, alpha])))
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.shape == (96, 128, 4)
    np.testing.assert_array_equal(out[..., 3], alpha)  # alpha untouched


def test_sigma_parameter_and_json(client, camera) -> None:
    _, noisy = camera
    data = encode(noisy.astype(np.uint8))
    body = post(client, data, "?output=json&sigma=25").json()
    assert body["sigma_used"] == 25 and body["sigma_estimated"] is None
    assert body["dtype"] == "uint8" and body["shape"] == [192, 220] and body["format"] == "png"
    assert body["noise_after"] < body["noise_before"] / 2
    Image.open(io.BytesIO(base64.b64decode(body["image"]))).verify()
    strong = np.asarray(Image.open(io.BytesIO(post(client, data, "?sigma=50").content)), np.float64)
    weak = np.asarray(Image.open(io.BytesIO(post(client, data, "?sigma=5").content)), np.float64)
    assert np.abs(np.diff(strong, axis=1)).mean() < np.abs(np.diff(weak, axis=1)).mean()  # sigma matters


def test_texture_is_not_taken_for_noise_when_the_level_is_estimated(client) -> None:
    """Grass (a training image) at sigma 15: the wavelet estimate reads its texture as noise; the service
    lowers the level to what the network removes (the card's share), closer to 15, and the answer is better
    than at the plain estimate."""
    from training.data.natural import bundled

    clean = bundled("grass")[150:406, 150:406].astype(np.float64)
    noisy = np.clip(clean + np.random.default_rng(3).normal(0, 15, clean.shape), 0, 255).round().astype(np.uint8)
    data = encode(noisy)
    assert client.get("/models/unet_denoise_gray").json()["card"]["input"]["noise_refine"] is not None
    body = post(client, data, "?output=json").json()
    estimate, used = body["noise_before"], body["sigma_used"]
    assert estimate > 17 and used == body["sigma_estimated"] and abs(used - 15) < abs(estimate - 15) / 2
    blind = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))), np.float64)
    at_estimate = np.asarray(Image.open(io.BytesIO(post(client, data, f"?sigma={estimate}").content)), np.float64)
    assert psnr(blind, clean, 255) > psnr(at_estimate, clean, 255) + 0.2


def test_self_ensemble_defaults_to_the_card_and_can_be_chosen(client, camera) -> None:
    clean, noisy = camera
    data = encode(noisy.astype(np.uint8))
    card_value = client.get("/models/unet_denoise_gray").json()["card"]["input"]["ensemble"]
    r = post(client, data, "?output=json&sigma=25")
    assert r.json()["ensemble"] == card_value and r.headers["x-ensemble"] == str(card_value)
    outs = {}
    for n in (1, 8):
        r = post(client, data, f"?sigma=25&ensemble={n}")
        assert r.status_code == 200 and r.headers["x-ensemble"] == str(n)
        outs[n] = np.asarray(Image.open(io.BytesIO(r.content)), np.float64)
    assert not np.array_equal(outs[1], outs[8])  # the passes really differ and are averaged
    assert psnr(outs[8], clean, 255) > psnr(outs[1], clean, 255)  # and the average is closer to the truth
    r = post(client, data, "?ensemble=3")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request" and "ensemble" in r.text


def test_jpeg_input_warns(client, camera) -> None:
    _, noisy = camera
    r = post(client, encode(noisy.astype(np.uint8), "JPEG"), "?output=json", "image/jpeg")
    assert r.status_code == 200 and "JPEG" in r.headers["x-warning"] and r.json()["warnings"]
    assert r.json()["noise_measured_as"] == "lossy"


def test_a_noisy_colour_jpeg_is_denoised_at_the_level_it_had(client) -> None:
    """A colour photo with sigma-25 noise saved as Pillow saves JPEGs (quality 75, 4:2:0): measured per colour
    plane its noise would read ~16 (JPEG averages the chroma noise away) and the denoiser, told that, would
    leave most of it in; measured on the luma's kept details it reads ~25, and the answer is dBs better."""
    from modelrepo.noise import estimate_sigma

    clean = (test_images(gray=False)["astronaut"][40:232, 200:392] * 255).round()
    noisy = np.clip(clean + np.random.default_rng(4).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    body = encode(noisy, "JPEG")
    j = post(client, body, "?output=json", "image/jpeg").json()
    assert j["noise_measured_as"] == "lossy" and j["denoised_as"] == "rgb"
    assert j["sigma_estimated"] == pytest.approx(25, rel=0.15)
    per_plane = estimate_sigma(np.asarray(Image.open(io.BytesIO(body)), np.float64) / 255) * 255
    assert per_plane < 0.8 * 25
    blind = np.asarray(Image.open(io.BytesIO(base64.b64decode(j["image"]))))
    told = np.asarray(Image.open(io.BytesIO(post(client, body, f"?sigma={per_plane}", "image/jpeg").content)))
    assert psnr(blind, clean, 255) > psnr(told, clean, 255) + 1.5
    png = post(client, encode(noisy), "?output=json").json()  # the same pixels losslessly: measured as before
    wavelet = estimate_sigma(noisy / 255) * 255
    assert png["noise_measured_as"] == "lossless" and png["noise_before"] == pytest.approx(wavelet, abs=1e-3)
    # the level used: the estimate, or lower where the network removes less (the card's noise_refine)
    assert png["sigma_estimated"] <= wavelet + 1e-3 and png["sigma_estimated"] == pytest.approx(25, rel=0.1)


def test_other_lossy_files_are_measured_as_jpegs(client, camera) -> None:
    """Lossy WebP (VP8: 4:2:0, transform-coded; also inside the extended VP8X layout that carries alpha) and
    JPEG-compressed TIFFs are measured as JPEGs are; lossless WebP as any lossless image."""
    from service.tasks.denoise import lossy_webp

    clean, noisy = camera
    colour = np.stack([noisy, np.clip(noisy * 0.9 + 10, 0, 255), np.clip(noisy * 0.8 + 30, 0, 255)], -1).astype(
        np.uint8
    )
    files = {}
    for name, kw in {"lossy": {"quality": 90}, "lossless": {"lossless": True}}.items():
        buf = io.BytesIO()
        Image.fromarray(colour).save(buf, "WEBP", **kw)
        files[name] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.dstack([colour, np.full(colour.shape[:2], 200, np.uint8)])).save(buf, "WEBP", quality=90)
    assert buf.getvalue()[12:16] == b"VP8X" and lossy_webp(buf.getvalue())
    assert lossy_webp(files["lossy"]) and not lossy_webp(files["lossless"]) and not lossy_webp(b"RIFF")
    for name, body in files.items():
        j = post(client, body, "?output=json", "image/webp").json()
        assert j["noise_measured_as"] == name, name
        assert ("lossy WebP" in " ".join(j["warnings"])) == (name == "lossy")
    buf = io.BytesIO()
    tifffile.imwrite(buf, colour, photometric="rgb", compression="jpeg")
    assert post(client, buf.getvalue(), "?output=json", "image/tiff").json()["noise_measured_as"] == "lossy"


def test_camera_noise_is_denoised_on_pixel_shuffled_sub_images_when_asked(client) -> None:
    """A colour photo through a simulated camera (Bayer mosaic, photon noise, demosaicing): blind, the
    default reads the correlated noise low and leaves much of it; pd=true measures and denoises the
    every-other-pixel sub-images, where it is nearly white, and gains dBs. Odd sizes come back whole; an
    image too small for it is denoised without it, said in the warnings."""
    from training.data.camera import camera_pair

    clean = test_images(gray=False, second_set=True)["coffee"][100:291, 150:357]  # (191, 207), odd sizes
    noisy, reference = camera_pair(clean, 100, 0.004, np.random.default_rng(9))
    body = encode(np.round(noisy * 255).astype(np.uint8))
    got = {}
    for pd in ("false", "true"):
        r = post(client, body, f"?pd={pd}&output=json")
        assert r.status_code == 200, r.text
        j = r.json()
        out = np.asarray(Image.open(io.BytesIO(base64.b64decode(j["image"]))), np.float64)
        assert out.shape == (191, 207, 3) and r.headers["x-pixel-shuffle"] == str(j["pixel_shuffle"])
        got[pd] = (psnr(out, reference * 255, 255), j)
    assert got["false"][1]["pixel_shuffle"] == 1 and got["true"][1]["pixel_shuffle"] == 2
    assert got["true"][1]["sigma_estimated"] > 1.8 * got["false"][1]["sigma_estimated"]
    assert got["true"][0] > got["false"][0] + 1.5
    r = post(client, encode(np.round(noisy[:20, :40] * 255).astype(np.uint8)), "?pd=true&output=json")
    assert r.json()["pixel_shuffle"] == 1 and any("pd=true" in w for w in r.json()["warnings"])


def test_a_gray_image_stored_as_rgb_is_denoised_as_gray(client, camera) -> None:
    """Three equal planes (PNG exactly, JPEG within its chroma rounding): the gray model, the answer in
    RGB again - the same pixels as the gray image's answer. The colour model, asked for by name, leaves
    much of that plane-correlated noise in."""
    clean, noisy = camera
    gray = noisy.astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    as_gray = np.asarray(Image.open(io.BytesIO(post(client, encode(gray), "?sigma=25").content)))
    r = post(client, encode(rgb), "?sigma=25")
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert r.headers["x-model"].startswith("unet_denoise_gray/") and r.headers["x-denoised-as"] == "gray"
    assert out.shape == (*gray.shape, 3) and (out == as_gray[..., None]).all()
    j = post(client, encode(rgb, "JPEG"), "?sigma=25&output=json", "image/jpeg").json()
    assert j["denoised_as"] == "gray" and j["model"]["name"] == "unet_denoise_gray" and j["shape"][2] == 3
    r = post(client, encode(rgb), "?sigma=25&model=unet_denoise_rgb")
    assert r.status_code == 200 and r.headers["x-denoised-as"] == "rgb"
    by_colour = np.asarray(Image.open(io.BytesIO(r.content)))[..., 1]
    assert psnr(as_gray, clean, 255) > psnr(by_colour, clean, 255) + 2
    colour = (np.random.default_rng(5).random((48, 64, 3)) * 255).astype(np.uint8)  # planes differ: colour
    assert post(client, encode(colour), "?sigma=25").headers["x-denoised-as"] == "rgb"


def test_photon_noise_is_stabilised_when_asked_for(client, camera) -> None:
    """Poisson noise (a peak of 30 photons) on a validation image with a wide intensity range: noise=auto
    and noise=poisson fit the noise-level function and denoise the stabilised image, far better than one
    Gaussian level; Gaussian noise under noise=auto is left to the Gaussian path, byte for byte."""
    from training.data.natural import validation_images

    wheel = validation_images(gray=True)[2]
    photons = np.random.default_rng(6).poisson(wheel * 30) / 30
    body = encode(np.clip(np.round(photons * 255), 0, 255).astype(np.uint8))
    got = {}
    for noise in ("gaussian", "auto", "poisson"):
        r = post(client, body, f"?noise={noise}&output=json")
        assert r.status_code == 200, r.text
        j = r.json()
        out = np.asarray(Image.open(io.BytesIO(base64.b64decode(j["image"]))), np.float64)
        got[noise] = (psnr(out, wheel * 255, 255), j["noise_model"])
    assert got["gaussian"][1] == {"kind": "gaussian"}
    for noise in ("auto", "poisson"):
        assert got[noise][1]["kind"] == "poisson-gaussian"
        assert got[noise][1]["gain_255"] == pytest.approx(255 / 30, rel=0.25)
        assert got[noise][0] > got["gaussian"][0] + 5
    gaussian = encode(camera[1].astype(np.uint8))
    auto = post(client, gaussian, "?noise=auto")
    assert auto.headers["x-noise-model"] == "gaussian" and auto.content == post(client, gaussian).content
    r = post(client, gaussian, "?noise=poisson&sigma=25")
    assert r.status_code == 422 and "sigma" in r.json()["error"]["message"]


def test_large_images_get_one_pass_unless_asked(camera) -> None:
    """Above ``denoise_ensemble_max_pixels`` the card's self-ensemble is not the default (a 12 MP colour photo
    took 3 minutes with 4 passes): one pass, said in the warnings; ensemble= still asks for more."""
    _, noisy = camera  # 192 x 220 = 42,240 pixels
    body = encode(noisy.astype(np.uint8))
    with ready_client(denoise_ensemble_max_pixels=40_000) as c:
        j = post(c, body, "?output=json").json()
        assert j["ensemble"] == 1 and any("one pass instead of the model's 2" in w for w in j["warnings"])
        asked = post(c, body, "?output=json&ensemble=2").json()
        assert asked["ensemble"] == 2 and asked["warnings"] == []
    with ready_client(denoise_ensemble_max_pixels=50_000) as c:
        j = post(c, body, "?output=json").json()
        assert j["ensemble"] == 2 and j["warnings"] == []


def test_tiled_equals_whole(camera) -> None:
    _, noisy = camera
    big = np.tile(noisy, (2, 2)).astype(np.uint8)  # (384, 440)
    with ready_client() as whole, ready_client(denoise_tile_size=128, denoise_tile_overlap=32) as tiled:
        a = np.asarray(Image.open(io.BytesIO(post(whole, encode(big), "?sigma=25").content)), np.float64)
        b = np.asarray(Image.open(io.BytesIO(post(tiled, encode(big), "?sigma=25").content)), np.float64)
    # the tiles' feathered blend stays within ~1 grey level of whole-image inference, no seams
    assert psnr(a, b, 255) > 38
    seams = np.abs(a - b)[:, [96, 192, 288, 384]].mean()  # columns where tiles meet
    assert seams < 3 * max(np.abs(a - b).mean(), 0.5)


def test_denoise_errors(client, camera, digits) -> None:
    assert post(client, b"nope").json()["error"]["code"] == "undecodable_image"
    r = post(client, encode(np.zeros((8, 8), np.int32), "TIFF"), ctype="image/tiff")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_bit_depth"
    assert post(client, encode(camera[1].astype(np.uint8)), "?sigma=300").status_code == 422
    r = post(client, digits[0][0], "?model=lenet5_digits")
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_task"


def test_the_default_denoiser_follows_the_image_colour(tmp_path) -> None:
    """With a colour and a gray denoiser served, a colour image goes to the colour model and a gray
    image to the gray one; ``model=`` still picks either (the committed models)."""
    import shutil

    models = tmp_path / "models"
    for name in ("unet_denoise_gray", "unet_denoise_rgb"):
        shutil.copytree(MODELS / name, models / name)
    rgb = encode((np.random.default_rng(3).random((64, 80, 3)) * 255).astype(np.uint8))
    gray = encode((np.random.default_rng(4).random((64, 80)) * 255).astype(np.uint8))
    with ready_client(models_dir=models) as c:
        assert post(c, rgb, "?sigma=25").headers["x-model"] == "unet_denoise_rgb/1"
        assert post(c, gray, "?sigma=25").headers["x-model"] == "unet_denoise_gray/1"
        assert post(c, rgb, "?sigma=25&model=unet_denoise_gray").headers["x-model"] == "unet_denoise_gray/1"
