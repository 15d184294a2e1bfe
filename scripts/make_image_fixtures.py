#!/usr/bin/python3
"""Image-decoding fixtures: one real photo crop written in every input variant users have, plus
Pillow's decoding of each file as the reference.

The reference is what Hugging Face's `transformers.image_utils.load_image` gives:
`PIL.ImageOps.exif_transpose(Image.open(f)).convert("RGB")`, stored raw (HWC, uint8) as
`<file>.rgb.bin`. `<file>.pil24.bin` is that image put through ViTImageProcessor's resize
(PIL bilinear to 24x24), for the end-to-end check. Files whose references are byte-identical share
one .bin (named after the first of them); `manifest.json` says which .bin belongs to each file, its
size and Pillow mode, and whether our decoder must agree exactly or only approximately (and why):
  exact          identical pixels expected
  approx         JPEG / 16-bit / CMYK: two decoders may round differently (bound in decode.test.ts)
  approx-scaled  gray16.png: the reference is the high byte, NOT Pillow's output, which saturates
  exact-opaque   transparent.gif: identical except under the transparent palette index
  unsupported    photo-rle8.bmp: Pillow reads it, ViT Lens refuses it with a clear error
Also writes bad/bomb.bmp (header claims 40000x40000) and bad/truncated.bmp.

Run with Debian's python (Pillow 9.4 + numpy):  /usr/bin/python3 scripts/make_image_fixtures.py
Deterministic: same Pillow/numpy → byte-identical output.
"""
import hashlib
import io
import json
import os
import struct
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "images")
SOURCE = "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"
# Both eyes and the nose of the cat, box-averaged 6x down to 47x31. Odd sizes on purpose: BMP rows
# need padding, JPEG chroma blocks are partial, and a swapped width/height cannot go unnoticed.
BOX = (100, 60, 382, 246)
FACTOR = 6
E2E_SIZE = (24, 24)  # (width, height) for the end-to-end resize reference

manifest = {
    "generator": "scripts/make_image_fixtures.py",
    "pillow": PIL.__version__,
    "numpy": np.__version__,
    "source": {"file": "skimage/data/chelsea.png", "box": list(BOX), "reduce": FACTOR},
    "reference": "ImageOps.exif_transpose(Image.open(f)).convert('RGB') as HWC uint8 (<file>.rgb.bin); "
    "<file>.pil24.bin = reference.resize((24, 24), Image.BILINEAR) (ViTImageProcessor's resize)",
    "files": {},
    "bad": {},
}


def path(name):
    return os.path.join(OUT, name)


def write_bytes(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def save(name, img, **kw):
    buf = io.BytesIO()
    img.save(buf, **kw)
    write_bytes(name, buf.getvalue())


_written = {}


def write_reference(name, data):
    """Write a reference once: files whose decoding is byte-identical (rgb.png, photo.bmp, ...)
    share the first one's .bin (keeps the fixtures small). Returns the file name to use."""
    key = hashlib.sha256(data).hexdigest()
    if key not in _written:
        write_bytes(name, data)
        _written[key] = name
    return _written[key]


def reference(name, compare, why, expected=None, **extra):
    """Decode `name` the Hugging Face way and record it. `expected` (HWC uint8) replaces Pillow's
    decoding as the reference where we deliberately differ from it; Pillow's is still returned."""
    with Image.open(path(name)) as im:
        info = {"format": im.format, "pil_mode": im.mode, "stored_size": list(im.size)}
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            info["frames"] = frames
        orientation = im.getexif().get(0x0112)
        if orientation:
            info["exif_orientation"] = orientation
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    pil = np.asarray(rgb, dtype=np.uint8)
    if expected is not None:
        assert expected.shape == pil.shape, (expected.shape, pil.shape)
        rgb = Image.fromarray(expected, "RGB")
    arr = np.asarray(rgb, dtype=np.uint8)
    small = np.asarray(rgb.resize(E2E_SIZE, Image.BILINEAR), dtype=np.uint8)
    entry = {
        "width": rgb.width,
        "height": rgb.height,
        **info,
        "reference": write_reference(name + ".rgb.bin", arr.tobytes()),
        "e2e_reference": write_reference(name + ".pil24.bin", small.tobytes()),
        "compare": compare,
        "why": why,
    }
    entry.update(extra)
    manifest["files"][name] = entry
    return pil


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16_rgb(name, arr16):
    """16-bit-per-channel RGB PNG (Pillow cannot write one): IHDR, one IDAT (filter 0), IEND."""
    h, w, _ = arr16.shape
    rows = arr16.astype(">u2").reshape(h, w * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    write_bytes(name, b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def pal_rgb(img, index):
    return tuple(img.getpalette()[3 * index: 3 * index + 3])


def bmp_file(w, h, bits, rows, palette=b"", colors=0, compression=0, header=40, masks=b"", gap=0, rle=None):
    """A BMP with `rows` (top row first, unpadded bytes) stored bottom-up, or RLE data `rle`."""
    if rle is None:
        stride = ((w * bits + 31) // 32) * 4
        data = b"".join(row.ljust(stride, b"\0") for row in reversed(rows))
    else:
        data = rle
    info = struct.pack("<IiiHHIIiiII", header, w, h, 1, bits, compression, len(data), 2835, 2835, colors, colors)
    if header > 40:
        info += masks.ljust(16, b"\0") + b"sRGB" + b"\0" * (header - 40 - 20)  # V4/V5: masks, CS type, rest zero
        extra = b""
    else:
        extra = masks
    offset = 14 + len(info) + len(extra) + len(palette) + gap
    head = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    return head + info + extra + palette + b"\0" * gap + data


def rle8(idx):
    """BI_RLE8 encoding of an index image (rows bottom-up): runs of 2+ in encoded mode, stretches of
    3+ single pixels in absolute mode (padded to an even length)."""
    out = bytearray()
    for row in idx[::-1]:
        row = [int(v) for v in row]
        i = 0
        while i < len(row):
            j = i
            while j + 1 < len(row) and row[j + 1] == row[i] and j - i < 254:
                j += 1
            if j > i:
                out += bytes([j - i + 1, row[i]])
                i = j + 1
                continue
            k = i  # collect singles
            while k < len(row) and (k + 1 >= len(row) or row[k + 1] != row[k]) and k - i < 254:
                k += 1
            n = k - i
            if n >= 3:
                out += bytes([0, n]) + bytes(row[i:k]) + (b"\0" if n % 2 else b"")
                i = k
            else:
                out += bytes([1, row[i]])
                i += 1
        out += b"\0\0"  # end of line
    out[-2:] = b"\0\1"  # end of bitmap replaces the last end of line
    return bytes(out)


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(path("bad"), exist_ok=True)
    for f in os.listdir(OUT):
        if os.path.isfile(path(f)):
            os.remove(path(f))

    with Image.open(SOURCE) as src:
        photo = src.convert("RGB").crop(BOX).reduce(FACTOR)
    assert photo.size == (47, 31), photo.size
    rgb = np.asarray(photo, dtype=np.uint8)
    h, w, _ = rgb.shape
    yy, xx = np.mgrid[0:h, 0:w]

    lossless = "lossless format, 8-bit, no colour conversion: expect identical pixels"

    # --- PNG family ------------------------------------------------------------------------------
    save("rgb.png", photo, format="PNG")
    reference("rgb.png", "exact", lossless)

    # Alpha from fully transparent (0) to opaque (255), with real colour under the transparent
    # pixels: HF drops alpha without compositing, so that colour must survive.
    alpha = ((xx * 255) // (w - 1)).astype(np.uint8)
    save("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), format="PNG")
    reference("rgba.png", "exact", lossless + "; alpha dropped, not composited")

    gray = photo.convert("L")
    save("gray.png", gray, format="PNG")
    reference("gray.png", "exact", lossless + " (gray replicated to R=G=B)")

    galpha = ((yy * 255) // (h - 1)).astype(np.uint8)
    save("gray-alpha.png", Image.fromarray(np.dstack([np.asarray(gray), galpha]), "LA"), format="PNG")
    reference("gray-alpha.png", "exact", lossless + "; alpha dropped")

    pal = photo.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    save("palette.png", pal, format="PNG")
    reference("palette.png", "exact", lossless + " (palette lookup)")

    pal_t = pal.copy()
    pal_t.info["transparency"] = int(np.asarray(pal)[0, 0])  # one palette entry marked transparent (tRNS)
    save("palette-trns.png", pal_t, format="PNG", transparency=pal_t.info["transparency"])
    reference("palette-trns.png", "exact", lossless + "; tRNS transparency dropped, palette colour kept")

    # 16 bits per channel. The low byte is a pattern, not zero, so a decoder that rounds
    # (v / 257) instead of taking the high byte (what Pillow does) shows up.
    low = ((xx[..., None] * 37 + yy[..., None] * 91 + np.arange(3) * 53) % 256).astype(np.uint16)
    rgb16 = rgb.astype(np.uint16) * 256 + low
    write_png16_rgb("rgb16.png", rgb16)
    reference("rgb16.png", "approx", "16-bit: Pillow keeps the high byte (v >> 8); a decoder that "
              "scales with rounding (v / 257) would be one level off on some pixels")

    g16 = np.asarray(gray).astype(np.uint16) * 256 + low[..., 0]
    save("gray16.png", Image.fromarray(g16, "I;16"), format="PNG")
    # Pillow opens 16-bit gray PNG as mode "I" and convert("RGB") then CLIPS each value to 0..255
    # (no scaling), so load_image() gives an almost white picture. We do not copy that: the test
    # compares against the high byte, like 16-bit RGB, and checks Pillow's literal output is the
    # saturated one, so the divergence stays documented.
    scaled = np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    literal = reference("gray16.png", "approx-scaled", "Pillow clips I→RGB (0..65535 → 255) instead of scaling; "
                        "reference is the high byte (v >> 8), as for 16-bit RGB", expected=scaled)
    e = manifest["files"]["gray16.png"]
    e["pil_literal_saturated_fraction"] = round(float((literal == 255).mean()), 4)
    e["pil_literal_vs_scaled_mean_abs"] = round(float(np.abs(literal.astype(int) - scaled.astype(int)).mean()), 2)

    # --- JPEG family -----------------------------------------------------------------------------
    jpeg = "JPEG: libjpeg-turbo (Pillow) and mozjpeg (sharp) may differ in IDCT/upsampling rounding"
    save("photo.jpg", photo, format="JPEG", quality=90)
    reference("photo.jpg", "approx", jpeg)
    save("UPPER.JPG", photo, format="JPEG", quality=90)
    reference("UPPER.JPG", "approx", jpeg + "; upper-case extension")
    save("progressive.jpg", photo, format="JPEG", quality=90, progressive=True)
    reference("progressive.jpg", "approx", jpeg + "; progressive")
    save("gray.jpg", gray, format="JPEG", quality=90)
    reference("gray.jpg", "approx", jpeg + "; grayscale")

    # EXIF orientations 2..8 (1 = none is photo.jpg). Stored pixels are the same crop; the viewer
    # (and exif_transpose) must mirror/rotate. 5..8 swap width and height.
    names = {2: "mirror", 3: "rotate", 4: "mirror", 5: "transpose", 6: "rotate", 7: "transverse", 8: "rotate"}
    for o, kind in names.items():
        exif = Image.Exif()
        exif[0x0112] = o
        name = f"exif-{kind}-{o}.jpg"
        save(name, photo, format="JPEG", quality=90, exif=exif.tobytes())
        reference(name, "approx", jpeg + f"; EXIF Orientation {o}")

    # CMYK with real black (grey-component replacement), as print workflows produce, and no ICC
    # profile. Pillow converts with the naive formula R = (255-C)(255-K)/255.
    f = rgb.astype(np.float64) / 255
    k = 1 - f.max(axis=2)
    cmy = np.where(k[..., None] < 1, (1 - f - k[..., None]) / np.maximum(1 - k[..., None], 1e-9), 0)
    cmyk = np.round(np.dstack([cmy, k]) * 255).astype(np.uint8)
    save("cmyk.jpg", Image.fromarray(cmyk, "CMYK"), format="JPEG", quality=90)
    reference("cmyk.jpg", "approx", "CMYK JPEG, no ICC profile: Pillow converts with the naive formula; libvips' ICC "
              "conversion was 9.4 levels mean / 28 max away, so preprocess.ts now applies Pillow's formula")

    # --- other containers ------------------------------------------------------------------------
    save("photo.webp", photo, format="WEBP", lossless=True, quality=100, method=6)
    reference("photo.webp", "exact", lossless + " (WebP lossless)")

    # Two frames; the second is the photo upside down and inverted, so taking the wrong frame fails.
    f1 = photo.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    f2 = ImageOps.invert(photo.rotate(180)).quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    save("anim.gif", f1, format="GIF", save_all=True, append_images=[f2], duration=200, loop=0)
    reference("anim.gif", "exact", lossless + "; first frame only")

    # A GIF whose first frame has a transparent palette index: Pillow's convert("RGB") shows the
    # palette colour under it.
    t = f1.copy()
    tidx = int(np.asarray(f1)[h // 2, w // 2])
    save("transparent.gif", t, format="GIF", transparency=tidx)
    reference("transparent.gif", "exact-opaque", "GIF transparency: pixels of the transparent index are "
              "undefined colour; Pillow shows the palette colour", transparent_index=tidx,
              transparent_rgb=list(pal_rgb(f1, tidx)),
              transparent_pixels=int((np.asarray(f1) == tidx).sum()))

    save("photo.bmp", photo, format="BMP")
    reference("photo.bmp", "exact", lossless + " (BMP 24-bit, bottom-up, padded rows)")
    save("photo32.bmp", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), format="BMP")
    reference("photo32.bmp", "exact", lossless + " (BMP 32-bit BI_RGB; Pillow reads the 4th byte as padding)")
    save("photo1.bmp", photo.convert("1"), format="BMP")  # Floyd-Steinberg dithered, 1 bit per pixel
    reference("photo1.bmp", "exact", lossless + " (BMP 1-bit, odd width)")
    save("photo8.bmp", pal, format="BMP")
    reference("photo8.bmp", "exact", lossless + " (BMP 8-bit palette)")
    # Top-down BMP: negative height in the header, rows stored first-to-last. Pillow cannot write it.
    bmp = bytearray(open(path("photo.bmp"), "rb").read())
    offset = struct.unpack_from("<I", bmp, 10)[0]
    stride = ((w * 3 + 3) // 4) * 4
    rows = [bytes(bmp[offset + r * stride: offset + (r + 1) * stride]) for r in range(h)]
    struct.pack_into("<i", bmp, 22, -h)
    bmp[offset:] = b"".join(reversed(rows))
    write_bytes("photo-topdown.bmp", bytes(bmp))
    reference("photo-topdown.bmp", "exact", lossless + " (BMP 24-bit top-down, negative height)")

    # BMP variants Pillow cannot write, built by hand (bmp_file below).
    idx = np.asarray(pal)
    pal_bgrx = np.asarray(pal.getpalette()[: 3 * 256], dtype=np.uint8).reshape(-1, 3)[:, ::-1]
    pal_bgrx = np.hstack([pal_bgrx, np.zeros((len(pal_bgrx), 1), np.uint8)]).tobytes()
    bgr_rows = [rgb[r, :, ::-1].tobytes() for r in range(h)]

    # 4-bit palette, odd width (the last byte of each row holds one pixel).
    pal16 = photo.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    i16 = np.asarray(pal16)
    p16 = np.asarray(pal16.getpalette()[:48], dtype=np.uint8).reshape(16, 3)[:, ::-1]
    p16 = np.hstack([p16, np.zeros((16, 1), np.uint8)]).tobytes()
    rows4 = []
    for r in range(h):
        row = np.append(i16[r], 0).astype(np.uint8)  # pad to an even count
        rows4.append(((row[0::2] << 4) | row[1::2]).astype(np.uint8).tobytes())
    write_bytes("photo4.bmp", bmp_file(w, h, 4, rows4, palette=p16, colors=16))
    reference("photo4.bmp", "exact", lossless + " (BMP 4-bit palette, odd width)")

    # 8-bit RLE: runs in encoded mode, isolated pixels in absolute mode, rows bottom-up.
    write_bytes("photo-rle8.bmp", bmp_file(w, h, 8, None, palette=pal_bgrx, colors=len(pal_bgrx) // 4,
                                           compression=1, rle=rle8(idx)))
    reference("photo-rle8.bmp", "unsupported", "BMP 8-bit RLE: Pillow reads it; bmp-ts mis-places RLE pixels, so "
              "ViT Lens refuses it with a clear error")

    # 32-bit BGRA with a V5 header and BI_BITFIELDS masks (what image editors write for alpha).
    rows32 = [np.hstack([rgb[r, :, ::-1], alpha[r][:, None]]).tobytes() for r in range(h)]
    masks = struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    write_bytes("photo-v5.bmp", bmp_file(w, h, 32, rows32, compression=3, header=124, masks=masks))
    reference("photo-v5.bmp", "exact", lossless + " (BMP 32-bit BGRA, V5 header, bitfields)")

    # The same pixels with a V5 header but BI_RGB (no bitfields) and zero masks, which is legal: the
    # masks must then be ignored (Pillow reads BGRX).
    write_bytes("photo-v5-rgb.bmp", bmp_file(w, h, 32, rows32, compression=0, header=124))
    reference("photo-v5-rgb.bmp", "exact", lossless + " (BMP 32-bit, V5 header, BI_RGB with zero masks)")

    # 24-bit with a gap between the headers and the pixels (bfOffBits points past it).
    write_bytes("photo-gap.bmp", bmp_file(w, h, 24, bgr_rows, gap=18))
    reference("photo-gap.bmp", "exact", lossless + " (BMP 24-bit, pixel data offset past an 18-byte gap)")

    # 16-bit RGB565 with bitfields: Pillow expands 5/6-bit values as v * 255 // 31 (or 63).
    q = rgb.astype(np.uint16)
    rgb565 = ((q[..., 0] >> 3) << 11) | ((q[..., 1] >> 2) << 5) | (q[..., 2] >> 3)
    rows16 = [rgb565[r].astype("<u2").tobytes() for r in range(h)]
    write_bytes("photo16.bmp", bmp_file(w, h, 16, rows16, compression=3, masks=struct.pack("<III", 0xF800, 0x07E0, 0x001F)))
    reference("photo16.bmp", "exact", "BMP 16-bit RGB565: 5/6-bit channels expanded as v * 255 // 31 (or 63), as Pillow does")

    save("photo.tiff", photo, format="TIFF", compression="tiff_deflate")
    reference("photo.tiff", "exact", lossless + " (TIFF, deflate)")

    # --- bad inputs (beyond test/fixtures/bad) ---------------------------------------------------
    # BMP header claiming 40000x40000 24-bit (4.8 GB of pixels) followed by 1 KB of data.
    side = 40000
    image_size = ((side * 3 + 3) // 4) * 4 * side
    head = b"BM" + struct.pack("<IHHI", (54 + image_size) & 0xFFFFFFFF, 0, 0, 54)
    head += struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, image_size & 0xFFFFFFFF, 2835, 2835, 0, 0)
    write_bytes("bad/bomb.bmp", head + b"\x7f" * 1024)
    try:
        Image.open(path("bad/bomb.bmp"))
        pil = "opened"
    except Exception as ex:  # noqa: BLE001 - recording Pillow's answer
        pil = f"{type(ex).__name__}: {ex}"
    manifest["bad"]["bomb.bmp"] = {"claims": [side, side], "pil": pil}

    # A valid 24-bit BMP cut off halfway through its pixel rows.
    full = open(path("photo.bmp"), "rb").read()
    write_bytes("bad/truncated.bmp", full[: offset + stride * (h // 2)])
    try:
        with Image.open(path("bad/truncated.bmp")) as im:
            im.load()
        pil = "loaded"
    except Exception as ex:  # noqa: BLE001
        pil = f"{type(ex).__name__}: {ex}"
    manifest["bad"]["truncated.bmp"] = {"pil": pil}

    with open(path("manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False)
        fh.write("\n")
    total = sum(os.path.getsize(os.path.join(d, x)) for d, _, fs in os.walk(OUT) for x in fs)
    print(f"{len(manifest['files'])} fixtures, {total / 1024:.1f} KiB in {OUT}")


if __name__ == "__main__":
    main()
