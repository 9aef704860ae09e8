"""Calling tools through an MCP client in tests: a result that must succeed, or an error that must
be a clear one (a ToolError message, not the SDK's bare "Error executing tool")."""


async def call(client, tool, **arguments):
    """A tool's structured result; fails the test on an error result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"
    return result.structured_content


async def error(client, tool, **arguments):
    """The message of a tool's error result; fails the test if the call succeeded."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    text = result.content[0].text
    assert text != f"Error executing tool {tool}", "an unanticipated exception, not a clear error"
    return text
