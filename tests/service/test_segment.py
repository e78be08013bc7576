"""POST /segment against the committed U-Net: every output form, sizes, tiling, 16-bit, bad inputs."""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi

from tests.conftest import MODELS
from tests.service.conftest import ready_client
from training.data.cells import make_cell_dataset
from training.seg_metrics import match_objects


def png16(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def cells():
    return make_cell_dataset(3, seed=424242, size=160)  # a seed the training never saw


def post(client, data: bytes, query: str = "", ctype: str = "image/png"):
    return client.post(f"/segment{query}", content=data, headers={"content-type": ctype})


def test_json_counts_and_measures_cells(client, cells) -> None:
    c = cells[0]
    r = post(client, png16(c.image))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (160, 160)
    assert [k["label"] for k in body["classes"]] == ["background", "cell", "border"]
    assert sum(k["fraction"] for k in body["classes"]) == pytest.approx(1.0)
    assert body["num_objects"] == len(body["objects"]) == int(r.headers["x-objects"])
    assert abs(body["num_objects"] - c.instances.max()) <= 2
    obj = body["objects"][0]
    assert set(obj) == {"label", "area", "centroid_x", "centroid_y", "bbox", "mean_intensity"}
    assert obj["mean_intensity"] > 2000  # in the file's own 16-bit units
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png"]))))
    assert mask.shape == (160, 160) and set(np.unique(mask)) <= {0, 1, 2}
    assert body["model"]["name"] == "unet_cells"


def test_labels_tiff_matches_the_truth(client, cells) -> None:
    for c in cells:
        r = post(client, png16(c.image), "?output=labels")
        assert r.status_code == 200 and r.headers["content-type"] == "image/tiff"
        labels = tifffile.imread(io.BytesIO(r.content))
        assert labels.dtype == np.uint16 and labels.shape == c.image.shape
        for lab in range(1, int(labels.max()) + 1):
            assert ndi.label(labels == lab)[1] == 1  # every label one connected region
        tp, fp, fn = match_objects(labels.astype(np.int32), c.instances)
        assert tp >= 0.85 * c.instances.max() and fp <= 2


def test_csv_png_and_overlay(client, cells) -> None:
    data = png16(cells[1].image)
    rows = list(csv.DictReader(io.StringIO(post(client, data, "?output=csv").text)))
    assert len(rows) == post(client, data).json()["num_objects"]
    assert set(rows[0]) == {
        "label",
        "area",
        "centroid_x",
        "centroid_y",
        "bbox_x0",
        "bbox_y0",
        "bbox_x1",
        "bbox_y1",
        "mean_intensity",
    }
    png = Image.open(io.BytesIO(post(client, data, "?output=png").content))
    assert png.mode == "P" and png.size == (160, 160) and set(np.unique(np.asarray(png))) <= {0, 1, 2}
    overlay = Image.open(io.BytesIO(post(client, data, "?output=overlay").content))
    assert overlay.mode == "RGB" and overlay.size == (160, 160)


@pytest.mark.parametrize("shape", [(37, 53), (5, 7), (1, 1)])
def test_odd_and_tiny_sizes(client, cells, shape) -> None:
    crop = cells[2].image[: shape[0], : shape[1]]
    r = post(client, png16(crop), "?output=png")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (shape[1], shape[0])


def test_16_bit_is_not_squashed(client, cells) -> None:
    twelve_bit = (cells[0].image // 16).astype(np.uint16)  # a 12-bit camera: 0..4095
    a = post(client, png16(twelve_bit), "?output=png").content
    b = post(client, png16(twelve_bit * 16), "?output=png").content
    assert a == b  # percentile normalisation: the same picture at any bit depth gives the same mask
    tif = io.BytesIO()
    tifffile.imwrite(tif, cells[0].image)
    c = post(client, tif.getvalue(), "?output=png", "image/tiff").content
    assert c == post(client, png16(cells[0].image), "?output=png").content


def test_tiled_inference_equals_whole_image() -> None:
    big = make_cell_dataset(1, seed=99, size=256)[0].image
    with ready_client() as whole, ready_client(segment_tile_size=96, segment_tile_overlap=24) as tiled:
        a = np.asarray(Image.open(io.BytesIO(post(whole, png16(big), "?output=png").content)))
        b = np.asarray(Image.open(io.BytesIO(post(tiled, png16(big), "?output=png").content)))
    assert (a == b).mean() >= 0.995


def test_long_thin_image_is_tiled_and_padded() -> None:
    strip = make_cell_dataset(1, seed=98, size=256)[0].image[:, :7]  # 256 x 7: tiles need padding too
    with ready_client(segment_tile_size=96, segment_tile_overlap=24) as c:
        r = post(c, png16(strip), "?output=png")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (7, 256)


def test_min_size_and_percentiles(client, cells) -> None:
    data = png16(cells[0].image)
    n = post(client, data).json()["num_objects"]
    assert post(client, data, "?min_size=100000").json()["num_objects"] == 0 < n
    r = post(client, data, "?pmin=50&pmax=10")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert post(client, data, "?pmin=0.5&pmax=99.9").status_code == 200


def test_segment_errors(client, cells, digits) -> None:
    r = post(client, b"not an image")
    assert r.status_code == 422 and r.json()["error"]["code"] == "undecodable_image"
    r = post(client, digits[0][0], "?model=lenet5_digits")
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_task"
    r = client.post("/classify?model=unet_cells", content=digits[0][0], headers={"content-type": "image/png"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_task"
    files = [("files", (f"{i}.png", png16(c.image), "image/png")) for i, c in enumerate(cells[:2])]
    r = client.post("/segment", files=files)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_images"
    r = post(client, png16(cells[0].image), "?output=svg")
    assert r.status_code == 422


def test_diameter_rescales_to_the_trained_size_and_maps_back(client, cells) -> None:
    """Cells drawn 3x larger than the training data: given their diameter (or estimating it) the image
    is rescaled so that they measure the top of the sizes segmented natively, and the labels come back on
    the input's own grid."""
    from modelrepo.segmentation import equivalent_diameters
    from training.seg_metrics import object_f1

    c = cells[0]
    big = ndi.zoom(c.image.astype(np.float64), 3, order=1)
    truth = ndi.zoom(c.instances, 3, order=0)
    d = float(np.median(equivalent_diameters(truth)))
    _, top = client.get("/models/unet_cells").json()["card"]["output"]["diameter_native"]
    assert d > top
    given = post(client, png16(big), f"?diameter={d:.1f}")
    assert given.status_code == 200, given.text
    body = given.json()
    assert body["diameter"]["used"] == pytest.approx(d, abs=0.1) and body["diameter"]["estimated"] is False
    assert body["diameter"]["scale"] == pytest.approx(top / d, rel=1e-3)
    labels = tifffile.imread(io.BytesIO(post(client, png16(big), f"?diameter={d:.1f}&output=labels").content))
    assert labels.shape == big.shape
    assert object_f1([labels], [truth])["f1"] >= 0.8
    auto = post(client, png16(big)).json()
    assert auto["diameter"]["estimated"] is True
    assert auto["diameter"]["used"] == pytest.approx(d, rel=0.5)


def test_magnified_cells_are_found_without_a_diameter(client, monkeypatch) -> None:
    """Cells 2x and 3x as wide as the independent generator draws them (up to ~140 px, far beyond the
    trained sizes) and no diameter given: the scale search (``modelrepo.cellseg._surest_scale``) shrinks
    the image until the network is sure of its cells. A single full-size first pass (the pipeline before
    it) finds fragments of about the trained size, so its estimate never asked for a rescale."""
    import modelrepo.cellseg as cellseg
    from modelrepo.segmentation import equivalent_diameters
    from training.data.cells_alt import make_alt_cell_dataset
    from training.seg_metrics import object_f1
    from training.tasks.segment import magnified

    # a seed no card or training set uses; images of at least 10 cells, so that an F1 and a median diameter
    # say something (with 3 cells one miss moves F1 by a third)
    data = [c for c in make_alt_cell_dataset(16, seed=4242) if c.instances.max() >= 10][:4]
    assert len(data) == 4

    def run() -> tuple[float, list[float]]:
        preds, truth, errors = [], [], []
        for c in [*magnified(data, 2), *magnified(data, 3)]:
            r = post(client, png16(c.image), "?output=labels")
            assert r.status_code == 200, r.text
            preds.append(tifffile.imread(io.BytesIO(r.content)).astype(np.int32))
            truth.append(c.instances)
            used = post(client, png16(c.image)).json()["diameter"]
            errors.append(abs(np.log(used["used"] / np.median(equivalent_diameters(c.instances)))))
        return object_f1(preds, truth)["f1"], errors

    f1, errors = run()
    assert f1 >= 0.75 and np.median(errors) < np.log(1.2) and sum(e > np.log(2) for e in errors) <= 1
    monkeypatch.setattr(cellseg, "CANDIDATE_SCALES", (1.0,))  # one full-size first pass
    f1_single, errors_single = run()
    assert f1_single < f1 - 0.2 and np.median(errors_single) > np.log(1.5)


def test_non_cell_images_are_warned_about_and_cells_are_not(client, cells) -> None:
    import skimage.data

    from training.data.cells_alt import make_alt_cell_dataset

    for name in ("camera", "astronaut", "page"):
        img = np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("L"))
        r = post(client, png16(img.astype(np.uint16) * 257))
        assert r.status_code == 200
        assert r.json()["warnings"] and r.headers.get("x-warning"), name
    for c in [*cells, *make_alt_cell_dataset(3, seed=4242)]:
        r = post(client, png16(c.image))
        assert r.json()["warnings"] == [] and "x-warning" not in r.headers


def _labels(client, data: bytes, query: str = "", ctype: str = "image/png"):
    r = post(client, data, "?output=labels" + query, ctype)
    assert r.status_code == 200, r.text
    return tifffile.imread(io.BytesIO(r.content)), r.headers.get("x-warning")


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_the_channel_with_the_cells_is_picked_from_a_colour_composite(client, cells) -> None:
    c = cells[0]
    nuclei = (c.image // 257).astype(np.uint8)  # the cells, 8-bit
    stain = np.zeros_like(nuclei)
    stain[20:140, 30:60] = 180  # another stain's structure in green, elsewhere
    composite = np.stack([np.zeros_like(nuclei), stain, nuclei], axis=-1)
    alone, _ = _labels(client, _png(nuclei))
    picked, warning = _labels(client, _png(composite), "&channel=blue")
    assert warning is None and np.array_equal(picked, alone)  # the blue band, exactly as if sent alone
    assert np.array_equal(_labels(client, _png(composite), "&channel=2")[0], alone)
    r = post(client, _png(composite))  # the default: brightness, and a warning saying how to pick
    assert r.status_code == 200 and "channel=red|green|blue" in r.json()["warnings"][0]
    for quiet in (np.stack([nuclei] * 3, axis=-1), np.stack([0 * nuclei, 0 * nuclei, nuclei], axis=-1)):
        assert "channel=" not in (post(client, _png(quiet)).headers.get("x-warning") or "")  # gray as RGB; one band


def test_a_page_of_a_multi_page_tiff_is_picked(client, cells) -> None:
    c = cells[1]
    dim = (100 + np.arange(c.image.size) % 7).reshape(c.image.shape).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack([dim, c.image.astype(np.uint16)]))  # page 0: another channel, page 1: the cells
    stack = buf.getvalue()
    alone, _ = _labels(client, png16(c.image))
    picked, warning = _labels(client, stack, "&channel=1", "image/tiff")
    assert warning is None and np.array_equal(picked, alone)
    r = post(client, stack, ctype="image/tiff")
    assert r.status_code == 200 and "holds 2 images" in r.json()["warnings"][0]
    for query, words in (("?channel=2", "2 pages"), ("?channel=purple", "red, green, blue"), ("?channel=-1", "")):
        r = post(client, stack, query, "image/tiff")
        assert r.status_code == 422 and words in r.json()["error"]["message"], r.text
        assert r.json()["error"]["code"] == "invalid_request"
    r = post(client, png16(c.image), "?channel=green")
    assert r.status_code == 422 and "1 channel" in r.json()["error"]["message"]
    assert client.get("/health/ready").status_code == 200


def test_16_bit_colour_and_compressed_tiffs_keep_their_values(client, cells) -> None:
    """A 16-bit RGB TIFF (Pillow would read 8 bits of it) and LZW / deflate TIFFs (as Fiji writes them) give
    the same objects as the plain 16-bit image."""
    c = cells[2]
    alone, _ = _labels(client, png16(c.image))
    rgb = np.zeros((*c.image.shape, 3), np.uint16)
    rgb[..., 1] = c.image
    for array, kwargs, query in (
        (rgb, {"photometric": "rgb"}, "&channel=green"),
        (c.image.astype(np.uint16), {"compression": "lzw"}, ""),
        (c.image.astype(np.uint16), {"compression": "zlib"}, ""),
    ):
        buf = io.BytesIO()
        tifffile.imwrite(buf, array, **kwargs)
        labels, warning = _labels(client, buf.getvalue(), query, "image/tiff")
        assert warning is None and np.array_equal(labels, alone), kwargs


def test_dark_cells_on_a_bright_background_are_found_with_invert(client) -> None:
    """Brightfield / histology: dark cells on a bright background. As sent, the network finds almost nothing
    and the answer says so and how to send them; invert=true turns the image and gives the same objects as
    the fluorescence-like original (a shift of the values, which the percentile normalisation ignores)."""
    from training.data.cells_alt import make_alt_cell_dataset

    c = max(make_alt_cell_dataset(4, seed=77), key=lambda c: int(c.instances.max()))
    bright = (int(c.image.max()) - c.image.astype(np.int64)).astype(np.uint16)
    original, _ = _labels(client, png16(c.image))
    r = post(client, png16(bright))
    assert r.status_code == 200 and "invert=true" in r.json()["warnings"][-1]
    as_sent, _ = _labels(client, png16(bright))
    assert match_objects(as_sent, c.instances)[0] < 0.25 * match_objects(original, c.instances)[0]  # cells missed
    picked, warning = _labels(client, png16(bright), "&invert=true")
    assert warning is None and np.array_equal(picked, original)
    rows = post(client, png16(bright), "?invert=true&output=csv").text.splitlines()
    assert len(rows) == int(original.max()) + 1  # measured in the file's own (bright-background) values


def test_a_given_diameter_within_the_native_range_is_not_rescaled(client) -> None:
    """Cells within the card's ``diameter_native`` given as such are segmented at their own size (scale 1), and
    the answer says which range that is. (Until 2026-12-07 this test also asserted that bringing them to the
    trained median instead - the rule before 2026-12-06 - is worse; for the network trained at the served scale
    it was better on these 8 images, 0.776 against 0.733 object F1, while validation had chosen the native range:
    not a settled quality claim, so it is no longer asserted here.)"""
    from modelrepo.repository import check_model_dir
    from modelrepo.segmentation import equivalent_diameters
    from training.data.cells_random import make_random_cell_dataset

    entry = check_model_dir(MODELS / "unet_cells")
    lo, hi = entry.card.output.diameter_native
    data = [c for c in make_random_cell_dataset(60, seed=4343, seam=0.25) if c.instances.max() >= 10]
    data = [c for c in data if lo <= np.median(equivalent_diameters(c.instances)) <= hi][:2]
    assert len(data) == 2
    for c in data:
        d = float(np.median(equivalent_diameters(c.instances)))
        r = post(client, png16(c.image), f"?diameter={d:.2f}").json()["diameter"]
        assert r["scale"] == 1.0 and r["estimated"] is False and r["native"] == [lo, hi]


def test_a_burnt_in_scale_bar_and_label_are_not_cells(client) -> None:
    """A figure exported with its scale bar and "10 um" drawn in (Fiji's Flatten): they are painted over, the
    answer says so, and the cells found are those of the same image without them (before 2026-12-06 the bar
    and the glyphs came back as objects)."""
    from PIL import ImageDraw

    from tests.conftest import ROOT

    raw = tifffile.imread(ROOT / "examples" / "cells" / "cells_16bit.tif").astype(np.float64)
    lo, hi = np.percentile(raw, (0.1, 99.9))
    a8 = (np.clip((raw - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(a8)
    h, w = a8.shape
    draw = ImageDraw.Draw(img)
    draw.rectangle([w - 10 - w // 5, h - 13, w - 10, h - 9], fill=255)
    draw.text((w - 10 - w // 5, h - 28), "10 um", fill=255)
    found = {}
    for name, im in (("plain", Image.fromarray(a8)), ("annotated", img)):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        r = post(client, buf.getvalue())
        assert r.status_code == 200, r.text
        found[name] = r.json()
    assert any("burnt-in" in w for w in found["annotated"]["warnings"])
    assert not any("burnt-in" in w for w in found["plain"]["warnings"])
    bar_box = (w - 10 - w // 5, h - 30, w - 10, h - 9)  # x0, y0, x1, y1 of the bar and its label

    def inside(body: dict) -> int:
        return sum(bar_box[0] <= o["centroid_x"] <= bar_box[2] and bar_box[1] <= o["centroid_y"] <= bar_box[3]
                   for o in body["objects"])  # fmt: skip

    # no objects made of the bar or the glyphs (7 there without the painting over, 3 in the plain image; a cell
    # under the bar may come out in two)
    assert inside(found["annotated"]) <= inside(found["plain"]) + 1
    assert abs(found["annotated"]["num_objects"] - found["plain"]["num_objects"]) <= 3
