"""A class-per-folder image tree as src/engine/data/image-folder.ts reads it: <root>/<class>/**.{jpg,jpeg,png},
or the same under <root>/train and <root>/val (or test, validation); without split folders, FNV-1a of each
file's relative path puts testFraction of the images in the test split. Classes are the sorted class
folders, images sorted by path; each is decoded with Pillow to RGB, its shorter side scaled to imageSize
(Lanczos) and the centre cropped, as image-decode.ts does with sharp (libvips): the same pixels where no
resize is needed, within a few levels of 255 where libvips' and Pillow's Lanczos filters differ."""
from __future__ import annotations

import os
from typing import List, Mapping, Sequence, Tuple

import numpy as np

EXTENSIONS = (".jpg", ".jpeg", ".png")
TEST_FOLDERS = ("val", "test", "validation")


def hash_string(text: str) -> int:
    """hash.ts hashString: FNV-1a over the string's UTF-16 code units, 32 bits."""
    h = 0x811C9DC5
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | (units[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in EXTENSIONS


def _class_folders(directory: str) -> List[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as error:
        raise FileNotFoundError(f"Cannot list {directory}: {error}") from error
    return [n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(directory, n))]


def _list_images(directory: str) -> List[str]:
    """Image files (and links) anywhere under `directory`, as sorted paths."""
    found: List[str] = []
    for parent, _, files in os.walk(directory, followlinks=False):
        for name in files:
            full = os.path.join(parent, name)
            if _is_image(name) and (os.path.isfile(full) or os.path.islink(full)):
                found.append(full)
    return sorted(found)


def _index_tree(directory: str, class_names: Sequence[str], known_only: bool) -> List[Tuple[str, int]]:
    records: List[Tuple[str, int]] = []
    for name in _class_folders(directory):
        if name not in class_names:
            if known_only:
                raise ValueError(f"{os.path.join(directory, name)} is not one of the classes of the train folder ({len(class_names)} classes).")
            continue
        label = class_names.index(name)
        records.extend((file, label) for file in _list_images(os.path.join(directory, name)))
    return records


def decode_image(path: str, size: int) -> np.ndarray:
    """RGB bytes [size, size, 3]: shorter side scaled to `size` (Lanczos), centre crop; grey becomes RGB, alpha is dropped."""
    from PIL import Image  # only image folders need Pillow

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read image {path}: {error}") from error
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        scaled = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(scaled, Image.LANCZOS)
        # libvips' centre gravity rounds an odd margin's half up (sharp: (in - out + 1) / 2).
        left, top = (scaled[0] - size + 1) // 2, (scaled[1] - size + 1) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)


class ImageFolderDataset:
    def __init__(self, source: Mapping[str, object]) -> None:
        root = os.path.abspath(str(source["root"]))
        split = str(source["split"])
        self.image_size = int(source["imageSize"])  # type: ignore[arg-type]
        self.on_bad_image = str(source["onBadImage"])
        if not os.path.isdir(root):
            raise FileNotFoundError(
                f"Image folder {root} does not exist or is not a folder (expected one sub-folder per class holding .jpg/.jpeg/.png images)."
            )
        entries = _class_folders(root)
        test_name = next((n for n in TEST_FOLDERS if n in entries), None)
        train_dir = os.path.join(root, "train") if "train" in entries else None
        if train_dir and test_name:
            self.class_names = _class_folders(train_dir)
            if not self.class_names:
                raise ValueError(f"{train_dir} has no class sub-folders.")
            location = train_dir if split == "train" else os.path.join(root, test_name)
            records = _index_tree(location, self.class_names, True)
        else:
            tree = train_dir or root
            self.class_names = _class_folders(train_dir) if train_dir else entries
            if not self.class_names:
                raise ValueError(f"Image folder {tree} has no sub-folders: expected one sub-folder per class holding .jpg/.jpeg/.png images.")
            every = _index_tree(tree, self.class_names, False)
            counts = np.bincount([label for _, label in every], minlength=len(self.class_names))
            empty = [n for n, c in zip(self.class_names, counts) if c == 0]
            if empty:
                raise ValueError(f"Class folder {os.path.join(tree, empty[0])} has no .jpg/.jpeg/.png images.")
            fraction = float(source["testFraction"])  # type: ignore[arg-type]

            def in_test(file: str) -> bool:
                return hash_string(os.path.relpath(file, tree).replace(os.sep, "/")) / 4294967296 < fraction

            records = [r for r in every if in_test(r[0]) == (split == "test")]
            location = tree
        if not records:
            raise ValueError(f"No .jpg/.jpeg/.png images for the {split} split under {location}.")
        self.records = records
        self.num_classes = len(self.class_names)
        self.bad_files: set = set()

    def __len__(self) -> int:
        return len(self.records)

    def _decode(self, index: int) -> Tuple[np.ndarray, int]:
        """As ImageFileDataset.decode: with onBadImage 'skip', the next readable image stands in for an unreadable one."""
        for tries in range(len(self.records) + 1):
            file, label = self.records[(index + tries) % len(self.records)]
            if self.on_bad_image == "skip" and file in self.bad_files:
                continue
            try:
                return decode_image(file, self.image_size), label
            except ValueError:
                if self.on_bad_image != "skip" or tries >= 100:
                    raise
                self.bad_files.add(file)
        raise ValueError("no readable image in the folder")

    def batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        images = np.empty((len(indices), self.image_size, self.image_size, 3), dtype=np.float32)
        labels = np.empty(len(indices), dtype=np.int64)
        for i, index in enumerate(indices):
            if not 0 <= int(index) < len(self.records):
                raise IndexError(f"index {index} is outside the {len(self.records)} images")
            pixels, labels[i] = self._decode(int(index))
            images[i] = (pixels.astype(np.float64) / 255).astype(np.float32)
        return images, labels
