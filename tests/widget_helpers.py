"""A base for widget tests that make their widgets in each test."""
from Orange.widgets.tests.base import WidgetTest


class WidgetHelpersTest(WidgetTest):
    """Orange's ``WidgetTest`` helpers (``create_widget``, ``send_signal``,
    ``get_output``, ``process_events`` ...) without the checks it runs on
    ``self.widget``.

    ``WidgetTest`` gives every subclass checks of ``self.widget`` (minimum
    size, image export, message classes, tables without rows or columns). A
    class that makes its widgets in each test (from old settings, in a
    workflow) has no ``self.widget``: the checks would only be skipped. Each
    widget's own test class sets ``self.widget`` and runs them.
    """

    # present, so that WidgetTest.__init_subclass__ adds none; not callable,
    # so that no test runner collects them
    test_minimum_size = None
    test_image_export = None
    test_msg_base_class = None
    test_zero_size_data = None
