"""The prompt estimate a budget reserves reads the whole conversation a request carries."""

from __future__ import annotations

from truckllm._internal.admission import estimate_tokens
from truckllm.kit.openai_schemas import ChatCompletionRequest, UserMessage
from truckllm.types import ChatRequest


def test_a_follow_up_by_reference_is_estimated_from_its_whole_conversation() -> None:
    """A Responses follow-up sent by ``previous_response_id`` has a small body but a typed form
    holding every earlier turn: the estimate takes the larger."""
    history = "earlier turn " * 4000
    typed = ChatCompletionRequest(model="m", messages=[UserMessage(content=history)], max_completion_tokens=50)
    small = ChatRequest(endpoint="chat", body=b'{"model":"m","previous_response_id":"resp_1","input":"hi"}',
                        model="m", typed=typed)
    prompt, completion = estimate_tokens(small)
    assert prompt >= len(history) // 4 and completion == 50
    plain = ChatRequest(endpoint="chat", body=b"x" * 4000, model="m")
    assert estimate_tokens(plain)[0] == 1000
