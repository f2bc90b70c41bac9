document.getElementById('root').textContent = 'Hello from kiln';
