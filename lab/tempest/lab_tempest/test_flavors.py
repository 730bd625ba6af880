from lab_tempest import base


class FlavorsTest(base.ComputeTest):
    def test_list_flavors(self):
        status, _, doc = base.get(base.COMPUTE_URL + "/flavors")
        self.assertEqual(200, status)
        self.assertIn("m1.tiny", [f["name"] for f in doc["flavors"]])

    def test_list_flavors_with_detail(self):
        _, _, doc = base.get(base.COMPUTE_URL + "/flavors/detail")
        for flavor in doc["flavors"]:
            self.assertGreater(flavor["ram"], 0)
            self.assertGreater(flavor["vcpus"], 0)

    def test_show_flavor(self):
        _, _, doc = base.get(base.COMPUTE_URL + "/flavors/1")
        self.assertEqual("1", doc["flavor"]["id"])
