from tests.harness import Server


async def test_sign_up_and_list_channels(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice, "general")
    await server.send(alice, channel, "hi")
    data = await server.gql(
        """{ channels { edges { node {
              name messages { edges { node { body author { id } } } }
        } } } }""",
        user=alice,
    )
    node = data["channels"]["edges"][0]["node"]
    assert node["name"] == "general"
    assert node["messages"]["edges"][0]["node"] == {"body": "hi", "author": {"id": alice.id}}
