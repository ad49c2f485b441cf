from corral.api.kinds import default_registry
from corral.apiserver.tables import column_definitions


def test_every_kind_prints_each_column_once() -> None:
    for resource_type in default_registry().all():
        names = [definition["name"].lower() for definition in column_definitions(resource_type)]
        assert len(names) == len(set(names)), f"{resource_type.kind}: {names}"
        assert names[0] == "name"
