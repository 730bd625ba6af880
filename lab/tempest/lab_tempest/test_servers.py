from lab_tempest import base


class ServersTest(base.ComputeTest):
    def test_list_servers(self):
        status, _, doc = base.get(base.COMPUTE_URL + "/servers")
        self.assertEqual(200, status)
        self.assertIsInstance(doc["servers"], list)

    def test_list_servers_with_detail(self):
        status, _, doc = base.get(base.COMPUTE_URL + "/servers/detail")
        self.assertEqual(200, status)
        self.assertIsInstance(doc["servers"], list)
