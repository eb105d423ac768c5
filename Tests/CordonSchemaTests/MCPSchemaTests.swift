import CordonJSON
import Foundation
import Testing

@testable import CordonSchema

/// The gateway's path end to end, on the MCP revisions' own schemas (../shared/data/mcp): a
/// server's tools/list result checked against the protocol, a tool's inputSchema compiled,
/// an agent's tools/call arguments validated against it.
@Suite struct MCPSchemaTests {
    static let directory = OfficialSuite.repo.deletingLastPathComponent().appendingPathComponent("shared/data/mcp").path
    static let revisions = ["2025-11-25", "2026-07-28"]

    static func protocolSchema(_ revision: String) throws -> [(String, JSON)] {
        let path = "\(directory)/schema-\(revision).json"
        let bytes = try #require(FileManager.default.contents(atPath: path), "the MCP schema is missing: expected \(path)")
        guard case .object(let members) = try JSON.parse(Array(bytes)) else { throw CancellationError() }
        return members
    }

    /// The protocol schema with a root `$ref` to one of its definitions.
    static func definition(_ name: String, of revision: String) throws -> JSONSchema {
        try JSONSchema.compile(.object(try protocolSchema(revision) + [("$ref", .string("#/$defs/\(name)"))]))
    }

    @Test(arguments: revisions)
    func everyDefinitionCompiles(_ revision: String) throws {
        // Discovery walks $defs, so one compile compiles every definition.
        let members = try Self.protocolSchema(revision)
        let schema = try JSONSchema.compile(.object(members))
        guard case .object(let defs)? = members.first(where: { $0.0 == "$defs" })?.1 else {
            Issue.record("no $defs in schema-\(revision).json")
            return
        }
        #expect(schema.nodes.count > defs.count)
        print("MCP \(revision): \(defs.count) definitions, \(schema.nodes.count) subschemas, all compiled")
    }

    @Test(arguments: revisions)
    func aToolsCallRequestIsCheckedAgainstTheProtocol(_ revision: String) throws {
        let call = try Self.definition("CallToolRequest", of: revision)
        // 2026-07-28 requests are stateless: each carries its protocol version and capabilities.
        let meta = revision == "2026-07-28"
            ? ##", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}"## : ""
        let good = try json(##"{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "read_file", "arguments": {"path": "/tmp/x"}\##(meta)}}"##)
        #expect(call.validate(good).isValid, "\(call.validate(good))")
        let bad = try json(##"{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"arguments": ["not", "an", "object"]}}"##)
        let result = call.validate(bad)
        #expect(result.violations.map(\.description).contains(##"/params: the required property "name" is missing"##), "\(result)")
        #expect(result.violations.contains { $0.instanceLocation == "/params/arguments" && $0.keyword == "type" }, "\(result)")
    }

    @Test(arguments: revisions)
    func aToolsInputSchemaGovernsItsArguments(_ revision: String) throws {
        let tool = try json(##"""
            {"name": "read_file", "description": "Reads a file",
             "inputSchema": {"type": "object", "properties": {
                "path": {"type": "string", "minLength": 1, "pattern": "^/"},
                "lines": {"type": "integer", "minimum": 1, "maximum": 1000}},
              "required": ["path"], "additionalProperties": false}}
            """##)
        #expect(try Self.definition("Tool", of: revision).validate(tool).isValid)
        let input = try JSONSchema.compile(try #require(tool["inputSchema"]))
        #expect(input.validate(try json(##"{"path": "/etc/hosts", "lines": 10}"##)).isValid)
        #expect(input.validate(try json(##"{"path": "etc/hosts", "lines": 0, "follow": true}"##)).description == ##"""
            /path: "etc/hosts" does not match the pattern ^/
            /lines: 0 is less than the minimum 1
            /follow: the property "follow" is not allowed; allowed: "path", "lines"
            """##)
        // A draft-07 inputSchema (the MCP TypeScript SDK's) is compiled as draft-07.
        let draft7 = try json(##"{"name": "t", "inputSchema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "dependencies": {"a": ["b"]}}}"##)
        #expect(try Self.definition("Tool", of: revision).validate(draft7).isValid)
        let input7 = try JSONSchema.compile(try #require(draft7["inputSchema"]))
        #expect(input7.dialect == .draft07)
        #expect(input7.validate(try json(##"{"a": 1, "b": 2}"##)).isValid)
        #expect(input7.validate(try json(##"{"a": 1}"##)).violations.map(\.keyword) == ["dependencies"])
        // What the protocol schema lets through as an inputSchema, CordonSchema may still refuse.
        let draft4 = try json(##"{"name": "t", "inputSchema": {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}}"##)
        #expect(try Self.definition("Tool", of: revision).validate(draft4).isValid)
        #expect(throws: SchemaError.self) { try JSONSchema.compile(try #require(draft4["inputSchema"])) }
    }
}
