#!/usr/bin/env python3
"""The official OpenAI Python client (tools/pydeps/openai.in) against cordond's OpenAI-compatible
endpoint. Prints one JSON object per line, one per step, for EndpointTests to check.

  openai_endpoint.py unix SOCKET | tcp BASE_URL TOKEN
"""
import json
import sys

import httpx2
import openai


def out(**kw):
    print(json.dumps(kw), flush=True)


def main():
    if sys.argv[1] == "unix":
        http = openai.DefaultHttpxClient(transport=httpx2.HTTPTransport(uds=sys.argv[2]))
        client = openai.OpenAI(api_key="unused-on-the-socket", base_url="http://localhost/v1", http_client=http, timeout=30)
    else:
        client = openai.OpenAI(api_key=sys.argv[3], base_url=sys.argv[2], timeout=30)
    out(step="models", ids=[m.id for m in client.models.list()])

    reply = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "what is 2+3"}])
    out(step="chat", id=reply.id, model=reply.model, content=reply.choices[0].message.content,
        finish=reply.choices[0].finish_reason, total=reply.usage.total_tokens)

    text, ids, usage = "", set(), None
    stream = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "what is 40+2"}],
                                            stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage:
            usage = chunk.usage.total_tokens
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    out(step="stream", text=text, ids=sorted(ids), usage=usage)

    tools = [{"type": "function", "function": {"name": "get_time", "description": "the time",
                                                 "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}}]
    reply = client.chat.completions.create(model="tooled", messages=[{"role": "user", "content": "time?"}], tools=tools)
    call = reply.choices[0].message.tool_calls[0]
    out(step="tools", finish=reply.choices[0].finish_reason, name=call.function.name, arguments=json.loads(call.function.arguments))

    calls = {}
    for chunk in client.chat.completions.create(model="tooled", messages=[{"role": "user", "content": "time?"}], tools=tools, stream=True):
        for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            c = calls.setdefault(d.index, {"name": "", "arguments": ""})
            if d.function and d.function.name:
                c["name"] += d.function.name
            if d.function and d.function.arguments:
                c["arguments"] += d.function.arguments
    out(step="tools-stream", calls=[{"name": c["name"], "arguments": json.loads(c["arguments"] or "{}")} for c in calls.values()])

    rated = client.post("/feedback", body={"id": reply.id, "success": True, "score": 0.75}, cast_to=object)
    out(step="feedback", answer=rated)
    try:
        client.post("/feedback", body={"id": reply.id, "success": True}, cast_to=object)
        out(step="feedback-again", status=200)
    except openai.APIStatusError as e:
        out(step="feedback-again", status=e.status_code)

    for name, model in [("unknown", "no-such-model"), ("failing", "failing")]:
        try:
            client.with_options(max_retries=2).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            out(step=name, status=200)
        except openai.APIStatusError as e:
            out(step=name, status=e.status_code, message=str(e.message), retry=e.response.headers.get("x-should-retry"))
    try:
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}], functions=[{"name": "f"}])
        out(step="refused-field", status=200)
    except openai.APIStatusError as e:
        out(step="refused-field", status=e.status_code, message=str(e.message))


if __name__ == "__main__":
    main()
