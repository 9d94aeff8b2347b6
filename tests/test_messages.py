"""Message types and preparation: what every backend sends, whatever the caller passed in."""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
    agglomerate_stream_deltas,
)
from hydragent.messages.images import (
    bedrock_image_block,
    image_bytes,
    image_data_url,
    load_pil_image,
    openai_image_part,
)
from hydragent.messages.prepare import prepare_messages
from hydragent.messages.reasoning import ReasoningSplitter, split_reasoning

PNG_BYTES = b"\x89PNG\r\n\x1a\nfake-image-bytes"
ALL_TO_USER = {role: "user" for role in MessageRole.roles()}


def test_the_five_roles_have_the_smolagents_values() -> None:
    assert MessageRole.roles() == ["user", "assistant", "system", "tool-call", "tool-response"]


def test_token_usage_totals_and_adds() -> None:
    usage = TokenUsage(input_tokens=7, output_tokens=3) + TokenUsage(2, 1)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (9, 4, 13)
    assert usage.dict() == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}


def test_a_message_always_has_token_usage() -> None:
    assert ChatMessage(role="assistant", content="hi", token_usage=None).token_usage == TokenUsage()
    loaded = ChatMessage.from_dict({"role": "assistant", "content": "hi"})
    assert loaded.token_usage.total_tokens == 0


def test_role_conversions_apply_before_merging() -> None:
    prepared = prepare_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "tool-response", "content": "Observation: 4"},
        ],
        role_conversions={"system": "user", "tool-response": "user"},
    )
    assert [m["role"] for m in prepared] == ["user"]
    assert prepared[0]["content"] == [{"type": "text", "text": "Be brief.\nHi\nObservation: 4"}]


def test_all_to_user_turns_a_dialogue_into_one_user_turn() -> None:
    dialogue = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A"},
    ]
    prepared = prepare_messages(dialogue, role_conversions=ALL_TO_USER, flatten_as_text=True)
    assert prepared == [{"role": "user", "content": "S\nU\nA"}]


def test_two_consecutive_string_system_messages_merge_where_smolagents_crashes() -> None:
    prepared = prepare_messages(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
        ]
    )
    assert prepared == [
        {
            "role": "system",
            "content": [{"type": "text", "text": "You are terse.\nAnswer in French."}],
        },
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
    ]


def test_list_content_merges_text_and_keeps_images_in_order() -> None:
    prepared = prepare_messages(
        [
            {"role": "user", "content": [{"type": "text", "text": "Look:"}]},
            {"role": "user", "content": [{"type": "image", "image": PNG_BYTES}]},
            {"role": "user", "content": "What is it?"},
        ]
    )
    parts = prepared[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image", "text"]
    assert parts[0]["text"] == "Look:" and parts[2]["text"] == "What is it?"


def test_flattening_turns_parts_into_one_string() -> None:
    prepared = prepare_messages(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        flatten_as_text=True,
    )
    assert prepared == [{"role": "user", "content": "a\nb"}]


def test_flattening_refuses_images_with_the_fix_in_the_message() -> None:
    with pytest.raises(ValueError, match="messages=structured"):
        prepare_messages(
            [{"role": "user", "content": [{"type": "image", "image": PNG_BYTES}]}],
            flatten_as_text=True,
        )


def test_images_become_base64_parts_or_data_urls(tmp_path: Path) -> None:
    image_file = tmp_path / "pixel.png"
    image_file.write_bytes(PNG_BYTES)
    encoded = base64.b64encode(PNG_BYTES).decode()
    message = {
        "role": "user",
        "content": [
            {"type": "image", "image": PNG_BYTES},
            {"type": "image", "image": str(image_file)},
        ],
    }

    as_parts = prepare_messages([message])[0]["content"]
    assert as_parts == [{"type": "image", "image": encoded}] * 2

    as_urls = prepare_messages([message], images_as_urls=True)[0]["content"]
    assert (
        as_urls
        == [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}] * 2
    )


def test_an_image_object_with_save_is_encoded_without_importing_pil() -> None:
    class FakeImage:
        def save(self, buffer: Any, format: str) -> None:
            buffer.write(PNG_BYTES)

    prepared = prepare_messages(
        [{"role": "user", "content": [{"type": "image", "image": FakeImage()}]}]
    )
    assert prepared[0]["content"][0]["image"] == base64.b64encode(PNG_BYTES).decode()


def test_unknown_role_is_rejected_with_the_valid_roles() -> None:
    with pytest.raises(ValueError) as error:
        prepare_messages([{"role": "narrator", "content": "Once upon a time"}])
    message = str(error.value)
    assert "narrator" in message
    for role in MessageRole.roles():
        assert role in message


@dataclass
class ForeignMessage:
    """A message object from another library: only `role` and `content` attributes."""

    role: Any
    content: Any


def test_objects_with_role_and_content_attributes_are_accepted() -> None:
    prepared = prepare_messages(
        [
            ForeignMessage(role=MessageRole.SYSTEM, content="rules"),
            ForeignMessage(role="user", content=[{"type": "text", "text": "question"}]),
            ChatMessage(role=MessageRole.ASSISTANT, content="answer"),
        ],
        flatten_as_text=True,
    )
    assert prepared == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "answer"},
    ]


def test_messages_that_carry_tool_calls_are_never_merged() -> None:
    call = ChatMessageToolCall(
        id="call_1", function=ChatMessageToolCallFunction(name="add", arguments={"a": 1})
    )
    prepared = prepare_messages(
        [
            {"role": "assistant", "content": "thinking"},
            ChatMessage(role="assistant", content=None, tool_calls=[call]),
            {"role": "tool-response", "content": "2", "tool_call_id": "call_1"},
            {"role": "tool-response", "content": "3", "tool_call_id": "call_2"},
        ]
    )
    assert [m["role"] for m in prepared] == [
        "assistant",
        "assistant",
        "tool-response",
        "tool-response",
    ]
    assert prepared[1]["tool_calls"][0].function.name == "add"
    assert [m["tool_call_id"] for m in prepared[2:]] == ["call_1", "call_2"]


def test_stream_deltas_merge_tool_call_fragments_by_index_and_sum_usage() -> None:
    def fragment(index: int, name: str | None, arguments: str, call_id: str | None = None) -> Any:
        return ChatMessageToolCallStreamDelta(
            index=index,
            id=call_id,
            function=ChatMessageToolCallFunction(name=name or "", arguments=arguments),
        )

    deltas = [
        ChatMessageStreamDelta(content="Let me "),
        ChatMessageStreamDelta(content="compute.", token_usage=TokenUsage(10, 1)),
        ChatMessageStreamDelta(tool_calls=[fragment(0, "add", '{"a": ', "call_a")]),
        ChatMessageStreamDelta(tool_calls=[fragment(1, "mul", '{"x": 2', "call_b")]),
        ChatMessageStreamDelta(tool_calls=[fragment(0, None, "1}")]),
        ChatMessageStreamDelta(tool_calls=[fragment(1, None, "}")], token_usage=TokenUsage(0, 5)),
    ]
    message = agglomerate_stream_deltas(deltas)
    assert message.content == "Let me compute."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "add", '{"a": 1}'),
        ("call_b", "mul", '{"x": 2}'),
    ]
    assert message.token_usage == TokenUsage(input_tokens=10, output_tokens=6)


def test_chat_message_round_trips_through_its_dict() -> None:
    call = ChatMessageToolCall(
        id="c1", function=ChatMessageToolCallFunction(name="search", arguments={"q": "hydra"})
    )
    original = ChatMessage(
        role=MessageRole.ASSISTANT, content="ok", tool_calls=[call], token_usage=TokenUsage(3, 4)
    )
    loaded = ChatMessage.from_dict(original.dict())
    assert loaded.role == MessageRole.ASSISTANT
    assert loaded.tool_calls[0].function.arguments == {"q": "hydra"}
    assert loaded.token_usage.total_tokens == 7


# --- smolagents fidelity ---------------------------------------------------------------------


def test_tool_call_function_takes_arguments_then_name_positionally_as_in_smolagents() -> None:
    function = ChatMessageToolCallFunction({"q": "hydra"}, "search", "Searches the web")
    assert (function.name, function.arguments, function.description) == (
        "search",
        {"q": "hydra"},
        "Searches the web",
    )


def test_field_order_matches_smolagents_so_positional_code_ports_unchanged() -> None:
    smolagents_models = pytest.importorskip("smolagents.models")
    ours = {
        ChatMessage: 5,  # smolagents' five fields come first; ours follow
        ChatMessageToolCallFunction: 3,
        ChatMessageToolCall: 3,
        ChatMessageStreamDelta: 3,
        ChatMessageToolCallStreamDelta: 4,
    }
    for klass, count in ours.items():
        theirs = [f.name for f in dataclasses.fields(getattr(smolagents_models, klass.__name__))]
        assert [f.name for f in dataclasses.fields(klass)][:count] == theirs


def test_a_message_coerces_dict_and_client_tool_calls() -> None:
    class ClientToolCall:  # what openai/litellm return: a pydantic object with model_dump
        def model_dump(self) -> dict[str, Any]:
            return {"id": "c2", "type": "function", "function": {"name": "mul", "arguments": "{}"}}

    message = ChatMessage(
        role="assistant",
        tool_calls=[
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": {"a": 1}}},
            ClientToolCall(),
        ],
    )
    assert all(isinstance(call, ChatMessageToolCall) for call in message.tool_calls)
    assert [(c.id, c.function.name) for c in message.tool_calls] == [("c1", "add"), ("c2", "mul")]
    assert json.loads(message.model_dump_json())["tool_calls"][1]["function"]["name"] == "mul"


def test_from_dict_takes_smolagents_token_usage_argument_without_touching_the_input() -> None:
    data = {
        "role": "assistant",
        "content": "hi",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}
        ],
    }
    message = ChatMessage.from_dict(data, raw={"id": 1}, token_usage=TokenUsage(5, 2))
    assert message.role is MessageRole.ASSISTANT
    assert message.token_usage.total_tokens == 7 and message.raw == {"id": 1}
    assert isinstance(data["tool_calls"][0], dict)  # smolagents rewrites the caller's dict


def test_token_usage_carries_total_like_smolagents_and_optional_reasoning_and_cache() -> None:
    usage = TokenUsage(100, 40, reasoning_tokens=30, cached_tokens=64)
    assert usage.total_tokens == 140  # reasoning is inside output, cache hits inside input
    assert dataclasses.asdict(usage)["total_tokens"] == 140  # smolagents' memory uses asdict
    assert usage.dict() == {
        "input_tokens": 100,
        "output_tokens": 40,
        "total_tokens": 140,
        "reasoning_tokens": 30,
        "cached_tokens": 64,
    }
    summed = usage + TokenUsage(1, 1)
    assert (summed.reasoning_tokens, summed.cached_tokens, summed.total_tokens) == (30, 64, 142)
    assert TokenUsage.from_dict(usage.dict()) == usage
    assert TokenUsage.from_dict(None) == TokenUsage()


# --- reasoning -------------------------------------------------------------------------------


def test_reasoning_travels_apart_from_the_answer_and_survives_the_transcript() -> None:
    message = ChatMessage(
        role="assistant",
        content="42",
        reasoning_content="6 times 7",
        token_usage=TokenUsage(10, 8, reasoning_tokens=5),
    )
    record = message.dict()
    assert record["content"] == "42" and record["reasoning_content"] == "6 times 7"
    assert record["token_usage"]["reasoning_tokens"] == 5
    loaded = ChatMessage.from_dict(json.loads(json.dumps(record)))
    assert (loaded.content, loaded.reasoning_content) == ("42", "6 times 7")
    assert "reasoning_content" not in ChatMessage(role="assistant", content="x").dict()


def test_reasoning_is_not_sent_back_to_the_model_in_the_next_turn() -> None:
    transcript = [
        {"role": "user", "content": "Q"},
        ChatMessage(role="assistant", content="A", reasoning_content="secret musing").dict(),
    ]
    prepared = prepare_messages(transcript, flatten_as_text=True)
    assert prepared == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def test_streamed_reasoning_concatenates() -> None:
    message = agglomerate_stream_deltas(
        [
            ChatMessageStreamDelta(reasoning_content="Let me "),
            ChatMessageStreamDelta(reasoning_content="think."),
            ChatMessageStreamDelta(content="Yes."),
        ]
    )
    assert (message.reasoning_content, message.content) == ("Let me think.", "Yes.")


@pytest.mark.parametrize(
    ("text", "thinking", "expected"),
    [
        ("<think>\nsix times seven\n</think>\n\n42", False, ("six times seven", "42")),
        ("  <think>a</think>b", False, ("a", "b")),
        ("six times seven</think>42", False, ("six times seven", "42")),  # R1: <think> in prompt
        ("six times seven\n</think>\n42", True, ("six times seven", "42")),
        ("<think>ran out of tokens", False, ("ran out of tokens", "")),
        ("no thinking here", False, (None, "no thinking here")),
        ("4 < 5 and <think> later", False, (None, "4 < 5 and <think> later")),
        ("<think></think>answer", False, ("", "answer")),
    ],
)
def test_think_blocks_split_from_local_model_text(
    text: str, thinking: bool, expected: tuple[str | None, str]
) -> None:
    assert split_reasoning(text, thinking=thinking) == expected


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_streaming_split_holds_back_partial_tags_and_matches_the_whole_text(size: int) -> None:
    text = "<think>\n  step one\n step two  \n</think>\n\nThe answer is 42."
    splitter = ReasoningSplitter()
    reasoning, content = "", ""
    for start in range(0, len(text), size):
        piece_reasoning, piece_content = splitter.feed(text[start : start + size])
        assert "<" not in piece_reasoning + piece_content  # no tag fragment ever leaks
        reasoning, content = reasoning + piece_reasoning, content + piece_content
    tail_reasoning, tail_content = splitter.flush()
    assert (reasoning + tail_reasoning, content + tail_content) == split_reasoning(text)
    assert split_reasoning(text) == ("step one\n step two", "The answer is 42.")


# --- images for each provider ----------------------------------------------------------------

JPEG_BYTES = b"\xff\xd8\xff\xe0fake-jpeg"


def test_data_urls_name_the_real_media_type() -> None:
    encoded = base64.b64encode(JPEG_BYTES).decode()
    assert image_data_url(JPEG_BYTES) == f"data:image/jpeg;base64,{encoded}"
    assert image_data_url("https://example.org/cat.png") == "https://example.org/cat.png"
    assert openai_image_part({"type": "image", "image": encoded}) == {
        "type": "image_url",
        "image_url": {"url": f"data:image/jpeg;base64,{encoded}"},
    }
    detailed = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    assert openai_image_part(detailed) == detailed


def test_bedrock_blocks_carry_raw_bytes_and_format(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(JPEG_BYTES)
    assert bedrock_image_block({"type": "image", "image": str(path)}) == {
        "image": {"format": "jpeg", "source": {"bytes": JPEG_BYTES}}
    }
    data_url = f"data:image/png;base64,{base64.b64encode(PNG_BYTES).decode()}"
    block = bedrock_image_block({"type": "image_url", "image_url": {"url": data_url}})
    assert block == {"image": {"format": "png", "source": {"bytes": PNG_BYTES}}}
    s3 = bedrock_image_block({"type": "image", "image": "s3://bucket/cat.JPG"})
    assert s3 == {
        "image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.JPG"}}}
    }
    with pytest.raises(ValueError, match="cannot fetch image URLs"):
        bedrock_image_block({"type": "image", "image": "https://example.org/cat.png"})


def test_unreadable_image_text_says_what_was_expected() -> None:
    with pytest.raises(ValueError, match="neither a file, a URL, a data URL nor base64"):
        image_bytes("not an image at all!")


def test_local_processors_get_pil_images_from_any_form() -> None:
    image_module = pytest.importorskip("PIL.Image")
    picture = image_module.new("RGB", (3, 2), "red")
    encoded = prepare_messages([{"role": "user", "content": [{"type": "image", "image": picture}]}])
    loaded = load_pil_image(encoded[0]["content"][0]["image"])
    assert loaded.size == (3, 2) and loaded.getpixel((0, 0)) == (255, 0, 0)
    assert load_pil_image(picture) is picture


def test_smolagents_own_messages_and_tool_calls_are_read() -> None:
    smolagents_models = pytest.importorskip("smolagents.models")
    call = smolagents_models.ChatMessageToolCall(
        function=smolagents_models.ChatMessageToolCallFunction(arguments={"a": 1}, name="add"),
        id="c9",
        type="function",
    )
    theirs = smolagents_models.ChatMessage(role="assistant", content="", tool_calls=[call])
    ours = ChatMessage(role="assistant", tool_calls=[call])
    assert (ours.tool_calls[0].id, ours.tool_calls[0].function.name) == ("c9", "add")
    prepared = prepare_messages([theirs])
    assert prepared[0]["tool_calls"][0].function.arguments == {"a": 1}
