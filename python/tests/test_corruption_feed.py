"""The evaluation's reader of the corrupted images (corruption_feed.py) and its corruption table
(evaluate_run.corruption_report): files taken in turn and deleted, a file of the wrong shape or dtype refused
with what it holds, a stop while waiting cancels, and the table's means against sums done by hand."""
import os
import tempfile
import unittest

import numpy as np

from mimir_torch.corruption_feed import CorruptionFeed, feed_file_name
from mimir_torch.evaluate_run import corruption_report
from mimir_torch.runtime import Cancelled


class CorruptionFeedTest(unittest.TestCase):
    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()

    def write(self, index: int, array: np.ndarray) -> None:
        np.save(os.path.join(self.folder, feed_file_name(index)), array)

    def test_takes_files_in_turn_and_deletes_them(self) -> None:
        a = np.random.default_rng(1).uniform(0, 1, (3, 4, 4, 3)).astype(np.float32)
        self.write(0, a)
        self.write(1, a[:2] * 0.5)
        feed = CorruptionFeed(self.folder, lambda: False)
        np.testing.assert_array_equal(feed.take(3, 4), a)
        np.testing.assert_array_equal(feed.take(2, 4), a[:2] * 0.5)
        self.assertEqual(os.listdir(self.folder), [])

    def test_refuses_a_file_of_another_shape_or_dtype(self) -> None:
        self.write(0, np.zeros((2, 4, 4, 3), np.float64))
        with self.assertRaisesRegex(ValueError, r"float64 \(2, 4, 4, 3\), not float32 \(2, 4, 4, 3\)"):
            CorruptionFeed(self.folder, lambda: False).take(2, 4)
        self.write(0, np.zeros((3, 4, 4, 3), np.float32))
        with self.assertRaisesRegex(ValueError, r"\(3, 4, 4, 3\), not float32 \(2, 4, 4, 3\)"):
            CorruptionFeed(self.folder, lambda: False).take(2, 4)

    def test_a_stop_while_waiting_cancels_and_a_missing_folder_is_named(self) -> None:
        with self.assertRaises(Cancelled):
            CorruptionFeed(self.folder, lambda: True).take(1, 4)
        with self.assertRaisesRegex(FileNotFoundError, "nowhere"):
            CorruptionFeed(os.path.join(self.folder, "nowhere"), lambda: False)

    def test_the_table_means(self) -> None:
        plan = {"types": ["jpeg", "contrast"], "severities": [1, 3], "table": "cifar10", "implementation": "corruptions/1"}
        right = {("jpeg", 1): 4, ("jpeg", 3): 2, ("contrast", 1): 8, ("contrast", 3): 1}
        examples = {"count": 8, "ids": list(range(8)), "source": "builtin/test"}
        report = corruption_report(plan, right, 8, 5, examples, "torch", 0.25)
        self.assertEqual([(c["type"], c["severity"], c["accuracy"]) for c in report["cells"]], [("jpeg", 1, 0.5), ("jpeg", 3, 0.25), ("contrast", 1, 1.0), ("contrast", 3, 0.125)])
        self.assertEqual(report["meanByType"], {"jpeg": 0.375, "contrast": 0.5625})
        self.assertEqual(report["mean"], (0.5 + 0.25 + 1.0 + 0.125) / 4)
        self.assertEqual((report["seed"], report["table"], report["durationMs"]), (5, "cifar10", 250.0))


if __name__ == "__main__":
    unittest.main()
