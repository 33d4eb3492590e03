"""`pgchaos explore`: seeded random fault schedules, judged without an expectation per
schedule, a failing one shrunk to a scenario file that reproduces it."""
