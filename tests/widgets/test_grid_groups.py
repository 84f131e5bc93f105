"""Groups on Image Grid: marking with modifiers, and kept by image value."""
import unittest

import numpy as np

from orangecontrib.imageanalytics.widgets.utils.grid_groups import (
    Mark,
    groups_by_value,
    mark,
    renumber,
    restore_groups,
)


class TestMark(unittest.TestCase):
    def test_modes(self):
        groups = mark(np.zeros(6, int), [0, 1], Mark.NEW_SELECTION)
        np.testing.assert_array_equal(groups, [1, 1, 0, 0, 0, 0])
        groups = mark(groups, [2, 3], Mark.NEW_GROUP)
        np.testing.assert_array_equal(groups, [1, 1, 2, 2, 0, 0])
        groups = mark(groups, [4], Mark.ADD_TO_LAST)
        np.testing.assert_array_equal(groups, [1, 1, 2, 2, 2, 0])
        # removing all of group 1 renumbers group 2 to 1
        groups = mark(groups, [0, 1], Mark.REMOVE)
        np.testing.assert_array_equal(groups, [0, 0, 1, 1, 1, 0])
        groups = mark(groups, [5], Mark.NEW_SELECTION)
        np.testing.assert_array_equal(groups, [0, 0, 0, 0, 0, 1])
        # adding to the last group when there is none starts group 1
        np.testing.assert_array_equal(mark(np.zeros(2, int), [1], Mark.ADD_TO_LAST),
                                      [0, 1])

    def test_mark_does_not_change_its_input(self):
        groups = np.array([1, 0])
        mark(groups, [1], Mark.NEW_GROUP)
        np.testing.assert_array_equal(groups, [1, 0])

    def test_renumber(self):
        np.testing.assert_array_equal(renumber(np.array([0, 3, 3, 7, 0])), [0, 1, 1, 2, 0])
        np.testing.assert_array_equal(renumber(np.zeros(0, int)), [])


class TestKeptByValue(unittest.TestCase):
    def test_round_trip_through_another_order_and_a_subset(self):
        values = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
        stored = groups_by_value(values, np.array([1, 0, 2, 2]))
        self.assertEqual(stored, {"a.jpg": 1, "c.jpg": 2, "d.jpg": 2})
        np.testing.assert_array_equal(
            restore_groups(["d.jpg", "x.jpg", "c.jpg", "a.jpg"], stored), [2, 0, 2, 1])
        # group 1's only photo gone: group 2 becomes group 1
        np.testing.assert_array_equal(restore_groups(["c.jpg", "b.jpg"], stored), [1, 0])
        np.testing.assert_array_equal(restore_groups(values, None), [0, 0, 0, 0])

    def test_rows_without_an_image_keep_no_group(self):
        self.assertEqual(groups_by_value(["a", None, ""], np.array([1, 1, 1])), {"a": 1})
        np.testing.assert_array_equal(restore_groups([None, "a"], {"a": 1}), [0, 1])

    def test_positional_form_of_version_2(self):
        np.testing.assert_array_equal(restore_groups(["a", "b", "c"], [0, 2, 2]),
                                      [0, 1, 1])
        # another number of rows: those groups belonged to other data
        np.testing.assert_array_equal(restore_groups(["a", "b"], [0, 2, 2]), [0, 0])


if __name__ == "__main__":
    unittest.main()
