from lab_tempest import base


class VersionsTest(base.ComputeTest):
    def test_root_lists_v21_current(self):
        status, _, doc = base.get(base.ROOT_URL + "/")
        self.assertEqual(200, status)
        v21 = [v for v in doc["versions"] if v["id"] == "v2.1"]
        self.assertEqual(1, len(v21))
        self.assertEqual("CURRENT", v21[0]["status"])
        self.assertGreaterEqual(base.microversion(v21[0]["version"]), (2, 1))

    def test_root_lists_v20_supported(self):
        _, _, doc = base.get(base.ROOT_URL + "/")
        v20 = [v for v in doc["versions"] if v["id"] == "v2.0"]
        self.assertEqual("SUPPORTED", v20[0]["status"])

    def test_show_v21(self):
        status, _, doc = base.get(base.COMPUTE_URL + "/")
        self.assertEqual(200, status)
        self.assertEqual("v2.1", doc["version"]["id"])
        self.assertEqual("2.1", doc["version"]["min_version"])

    def test_latest_microversion_is_served(self):
        _, _, doc = base.get(base.COMPUTE_URL + "/")
        status, headers, _ = base.get(
            base.COMPUTE_URL + "/flavors",
            {"OpenStack-API-Version": "compute latest"})
        self.assertEqual(200, status)
        served = headers.get("OpenStack-API-Version", "").split()[-1]
        # Behind a load balancer mid-upgrade the two answers may come from different
        # releases; the served one must still be a valid microversion.
        self.assertGreaterEqual(base.microversion(served), (2, 1))
        self.assertTrue(doc["version"]["version"])
