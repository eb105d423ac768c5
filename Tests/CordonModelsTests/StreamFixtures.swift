/// Streams as providers write them, after the shapes in the research memo (§1.3 for OpenAI's,
/// §2.3 for Anthropic's) and the providers' documented examples. Written here, not captured:
/// no test reaches a provider.
enum StreamFixtures {
    /// An OpenAI-compatible stream: the role chunk, text, one tool call in three fragments, the
    /// finish chunk, vLLM's usage chunk (`choices: null`), a keep-alive comment, `[DONE]`.
    static let openAI = """
    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"content":"Let me check"},"logprobs":null,"finish_reason":null}]}

    : keep-alive

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"content":" — in Paris ☀️."},"logprobs":null,"finish_reason":null}]}

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\":"}}]},"logprobs":null,"finish_reason":null}]}

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \\"Paris\\"}"}}]},"logprobs":null,"finish_reason":null}]}

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}

    data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b","choices":null,"usage":{"prompt_tokens":31,"completion_tokens":12,"total_tokens":43}}

    data: [DONE]


    """

    /// An Anthropic stream: a thinking block (index 0), text (index 1), two tool_use blocks
    /// (indexes 2 and 3, Cordon's tool calls 0 and 1), pings, usage with cache reads.
    static let anthropic = """
    event: message_start
    data: {"type":"message_start","message":{"id":"msg_01XY","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":2}}}

    event: content_block_start
    data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants the weather."}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}

    event: content_block_stop
    data: {"type":"content_block_stop","index":0}

    event: content_block_start
    data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

    event: ping
    data: {"type": "ping"}

    event: content_block_delta
    data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking the weather"}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" in Paris."}}

    event: content_block_stop
    data: {"type":"content_block_stop","index":1}

    event: content_block_start
    data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Pa"}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}

    event: content_block_stop
    data: {"type":"content_block_stop","index":2}

    event: content_block_start
    data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01B","name":"get_time","input":{}}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\\"tz\\":\\"CET\\"}"}}

    event: content_block_stop
    data: {"type":"content_block_stop","index":3}

    event: message_delta
    data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

    event: future_event_type
    data: {"type":"future_event_type","anything":[1,2,3]}

    event: message_stop
    data: {"type":"message_stop"}


    """
}
