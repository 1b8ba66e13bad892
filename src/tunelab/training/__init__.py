"""Fine-tuning: job configuration, the two training methods, the Accelerate loop and the job worker."""
