"""The pre-flight planner (`practicum plan`): memory, FLOPs, speed and time of a run, before it runs."""

from practicum.plan.memory import (
    OVERHEAD,
    device_memory,
    estimate_activations,
    measure_saved_bytes,
    memory_estimate,
    optimizer_state_bytes,
    real_optimizer_bytes,
    suggest,
)
from practicum.plan.run import Plan, build_setup, count_flops, format_plan, plan_run, time_steps

__all__ = ["OVERHEAD", "Plan", "build_setup", "count_flops", "device_memory", "estimate_activations",
           "format_plan", "measure_saved_bytes", "memory_estimate", "optimizer_state_bytes",
           "plan_run", "real_optimizer_bytes", "suggest", "time_steps"]
