"""Stand-ins for what only GitHub has, shared by the forker's tests (monitoring, release, review) and the
template's own (tests/template): the GitHub REST API test server and the real CML CLI's location."""
