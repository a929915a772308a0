from scrums_velocity.cli import app

app(prog_name="velocity")
