"""``webtv worker``: this project's render stages served as a Gradio app, for remote GPUs."""
