"""Message types and preparation: what every backend sends, whatever the caller passed in."""

from __future__ import annotations

import base64
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
    prepare_messages,
)

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
